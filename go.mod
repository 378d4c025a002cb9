module github.com/callpostback/caddy-postback

go 1.26.8

package caddymodule

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// postbackSubcommands are the subcommands of `caddy postback`; each file
// that adds one appends its constructor in an init function. They are built
// when Caddy assembles its command tree, after every init has run.
var postbackSubcommands []func() *cobra.Command

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "postback",
		Usage: "<command>",
		Short: "Creates webhook keys and secrets, and operates the postback queue",
		CobraFunc: func(cmd *cobra.Command) {
			for _, sub := range postbackSubcommands {
				cmd.AddCommand(sub())
			}
		},
	})
}

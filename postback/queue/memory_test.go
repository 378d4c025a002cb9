package queue_test

import (
	"testing"

	"github.com/callpostback/caddy-postback/postback/queue"
	"github.com/callpostback/caddy-postback/postback/queue/queuetest"
)

func TestMemory(t *testing.T) {
	queuetest.Run(t, func(*testing.T) queue.Queue { return queue.NewMemory() })
}

package queue_test

import (
	"testing"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/queue/queuetest"
)

func TestMemoryDeadLetters(t *testing.T) {
	queuetest.RunDead(t, func(*testing.T) queue.Queue { return queue.NewMemory() })
}

package memory

import (
	"testing"

	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/broker/brokertest"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, 1, func(*testing.T) broker.Broker { return New() })
}

func TestInterest(t *testing.T) {
	brokertest.RunInterest(t, 1, false, func(*testing.T) broker.Broker { return New() })
}

package embedded

import (
	"testing"

	"github.com/heraldpush/herald/internal/store"
	"github.com/heraldpush/herald/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), Options{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	})
}

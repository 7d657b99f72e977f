package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/hooks"
)

// receiptEvent is one event of the receipts webhook: device of user was
// handed (delivered) or acknowledged (acked) every message of the user's
// inbox up to Seq; IDs are the messages this event newly covers, oldest
// first.
type receiptEvent struct {
	Type   string   `json:"type"`
	User   string   `json:"user"`
	Device string   `json:"device"`
	Seq    uint64   `json:"seq"`
	IDs    []string `json:"ids"`
	At     int64    `json:"at"` // Unix milliseconds
}

// Receipt event types.
const (
	eventDelivered = "delivered"
	eventAcked     = "acked"
)

// maxEventIDs bounds the ids one event gathers from the events merged
// into it.
const maxEventIDs = 1000

// receiptHook posts receipts to the backend named by --receipts-webhook.
// A nil *receiptHook is off: every method returns at once.
type receiptHook struct {
	p *hooks.Poster[receiptEvent]
}

func newReceiptHook(cfg config.Config, log *slog.Logger) *receiptHook {
	if cfg.ReceiptsWebhook == "" {
		return nil
	}
	return &receiptHook{p: hooks.New(hooks.Config{URL: cfg.ReceiptsWebhook, Secret: []byte(cfg.ReceiptsWebhookSecret)}, log, mergeReceipts)}
}

// mergeReceipts folds an event into the one queued before it when both
// are of one kind for one device: a burst of messages to a device makes
// one event.
func mergeReceipts(last *receiptEvent, next receiptEvent) bool {
	if last.Type != next.Type || last.User != next.User || last.Device != next.Device ||
		next.Seq <= last.Seq || len(last.IDs)+len(next.IDs) > maxEventIDs {
		return false
	}
	last.Seq, last.At = next.Seq, next.At
	last.IDs = append(last.IDs, next.IDs...)
	return true
}

func (h *receiptHook) run(ctx context.Context) {
	if h != nil {
		h.p.Run(ctx)
	}
}

func (h *receiptHook) add(typ, user, device string, seq uint64, ids []string) {
	if h == nil {
		return
	}
	if ids == nil {
		ids = []string{}
	}
	h.p.Add(receiptEvent{Type: typ, User: user, Device: device, Seq: seq, IDs: ids, At: time.Now().UnixMilli()})
}

// ackedIDs returns the ids of the messages an ack of device up to seq
// covers, read before the ack (which may drop them), and whether the ack
// moves the device; only when the webhook is on.
func (s *Server) ackedIDs(ctx context.Context, user, device string, seq uint64) ([]string, bool) {
	p, err := s.store.Pending(ctx, user, device, s.cfg.InboxMaxMessages+expireEvery)
	if err != nil {
		s.log.Warn("receipts webhook: read what an ack covers", "user", user, "device", device, "err", err)
		return nil, true
	}
	var ids []string
	for _, r := range p.Records {
		if r.Offset > seq {
			break
		}
		if m, err := restore(r); err == nil {
			ids = append(ids, m.ID)
		}
	}
	return ids, seq > p.Acked
}

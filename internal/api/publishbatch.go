package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/heraldpush/herald/internal/protocol"
)

// channelMessage is one message of a batch publish.
type channelMessage struct {
	Channel *string         `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// atIndex names the batch message at index i in a validation error.
func atIndex(i int, err error) error {
	var ae *Error
	if errors.As(err, &ae) {
		e := *ae
		e.Message = fmt.Sprintf("messages[%d]: %s", i, e.Message)
		return &e
	}
	return err
}

// publishBatch publishes many channel messages in one request: each
// channel's messages in their order, those of a channel with history in
// one write. The answer has their ids in request order.
func (a *API) publishBatch(r *http.Request, msgs []channelMessage, ex except) (any, error) {
	switch {
	case len(msgs) == 0:
		return nil, errorf(http.StatusBadRequest, "invalid_field", "field \"messages\" is empty; give at least one message")
	case len(msgs) > a.cfg.MaxBatch:
		return nil, errorf(http.StatusBadRequest, "too_large", "a batch may hold at most %d messages, got %d", a.cfg.MaxBatch, len(msgs))
	}
	if err := ex.check(); err != nil {
		return nil, err
	}
	channels := make([]string, len(msgs))
	data := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		ch, err := checkChannel(m.Channel)
		if err != nil {
			return nil, atIndex(i, err)
		}
		d, err := a.data(m.Data)
		if err != nil {
			return nil, atIndex(i, err)
		}
		channels[i], data[i] = ch, d
	}
	return a.do(r, push{
		n: len(msgs),
		canonical: func() (any, error) {
			form := make([]any, len(msgs))
			for i := range msgs {
				cd, err := canonicalJSON(data[i])
				if err != nil {
					return nil, err
				}
				form[i] = map[string]any{"channel": channels[i], "data": cd}
			}
			return ex.canonical(map[string]any{"messages": form}), nil
		},
		act: func(ctx context.Context, ids []string, _ bool) error {
			ms := make([]*protocol.Message, len(msgs))
			for i := range msgs {
				ms[i] = ex.apply(&protocol.Message{ID: ids[i], Kind: protocol.KindChannel, Channel: channels[i], Data: data[i]})
			}
			return partial(a.b.DispatchBatch(ctx, ms), ids, channels,
				"names their channels: retry those; a retry with the same "+IdempotencyKeyHeader+" publishes the whole batch again with the same ids, and clients drop the messages they had by id")
		},
		answer: manyIDs,
	})
}

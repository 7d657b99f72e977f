package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/rediskey"
	"github.com/heraldpush/herald/internal/store"
)

func (s *Store) channelBase(channel string) string { return rediskey.Channel(s.prefix, channel) }

func (s *Store) channelIndex() string { return s.prefix + ":channels" }

// position reads {top, epoch, ...} from a channel script's answer.
func position(msgs []rueidis.RedisMessage) (store.Position, error) {
	if len(msgs) < 2 {
		return store.Position{}, fmt.Errorf("malformed answer")
	}
	top, err := msgs[0].AsInt64()
	if err != nil {
		return store.Position{}, err
	}
	epoch, err := msgs[1].ToString()
	return store.Position{Offset: uint64(top), Epoch: epoch}, err
}

// channelScript runs a channel script with the epoch candidate first.
func (s *Store) channelScript(ctx context.Context, script *rueidis.Lua, channel string, args ...string) ([]rueidis.RedisMessage, error) {
	if err := s.enterName(ctx, channel); err != nil {
		return nil, err
	}
	return s.run(ctx, script, s.channelBase(channel), append([]string{newEpoch()}, args...)...).ToArray()
}

// Append implements store.History.
func (s *Store) Append(ctx context.Context, channel string, at time.Time, data []byte) (store.Position, error) {
	return s.appendScript(ctx, "append to "+channel, appendScript, channel, encodeTime(at), rueidis.BinaryString(data), "", "")
}

// AppendBatch implements store.History.
func (s *Store) AppendBatch(ctx context.Context, channel string, at time.Time, data [][]byte) (store.Position, error) {
	return s.AppendLive(ctx, channel, at, data, nil)
}

// AppendLive is AppendBatch that also publishes live[i], positioned, as
// it stores data[i], in the same script: the nodes receive a channel's
// messages in offset order, whichever nodes stored them. Without
// Options.Publish, or with no live payloads, it publishes nothing.
func (s *Store) AppendLive(ctx context.Context, channel string, at time.Time, data, live [][]byte) (store.Position, error) {
	if len(data) == 0 {
		return store.Position{}, store.ErrEmptyBatch
	}
	pub := s.publish
	if live == nil {
		pub = ""
	} else if len(live) != len(data) {
		return store.Position{}, fmt.Errorf("redis store: %d live payloads for %d records", len(live), len(data))
	}
	if len(data) == 1 {
		var payload string
		if pub != "" {
			payload = rueidis.BinaryString(live[0])
		}
		return s.appendScript(ctx, "append to "+channel, appendScript, channel, encodeTime(at), rueidis.BinaryString(data[0]), pub, payload)
	}
	args := make([]string, 0, 3+2*len(data))
	args = append(args, encodeTime(at), pub, strconv.Itoa(len(data)))
	for _, d := range data {
		args = append(args, rueidis.BinaryString(d))
	}
	if pub != "" {
		for _, d := range live {
			args = append(args, rueidis.BinaryString(d))
		}
	}
	return s.appendScript(ctx, "append a batch to "+channel, appendBatchScript, channel, args...)
}

// appendScript runs a script that appends to channel and answers {first
// offset, epoch}, and lists the channel.
func (s *Store) appendScript(ctx context.Context, what string, script *rueidis.Lua, channel string, args ...string) (store.Position, error) {
	msgs, err := s.channelScript(ctx, script, channel, args...)
	if err != nil {
		return store.Position{}, errorf(what, err)
	}
	pos, err := position(msgs)
	if err != nil {
		return store.Position{}, errorf(what, err)
	}
	if err := s.index(ctx, s.channelIndex(), channel); err != nil {
		return pos, errorf(what, err)
	}
	return pos, nil
}

// Top implements store.History.
func (s *Store) Top(ctx context.Context, channel string) (store.Position, error) {
	msgs, err := s.channelScript(ctx, topScript, channel)
	if err != nil {
		return store.Position{}, errorf("top of "+channel, err)
	}
	pos, err := position(msgs)
	if err != nil {
		return store.Position{}, errorf("top of "+channel, err)
	}
	return pos, nil
}

// Read implements store.History.
func (s *Store) Read(ctx context.Context, channel string, r store.Range) ([]store.Record, store.Position, error) {
	if r.Limit <= 0 {
		return nil, store.Position{}, store.ErrInvalidLimit
	}
	back := "0"
	if r.Backwards {
		back = "1"
	}
	msgs, err := s.channelScript(ctx, readScript, channel, strconv.FormatUint(r.From, 10), back, strconv.Itoa(r.Limit))
	if err != nil {
		return nil, store.Position{}, errorf("read "+channel, err)
	}
	pos, err := position(msgs)
	if err != nil || len(msgs) != 3 {
		return nil, store.Position{}, errorf("read "+channel, fmt.Errorf("malformed answer: %v", err))
	}
	entries, err := msgs[2].ToArray()
	if err != nil {
		return nil, store.Position{}, errorf("read "+channel, err)
	}
	recs, err := parseEntries(entries)
	if err != nil {
		return nil, store.Position{}, errorf("read "+channel, err)
	}
	return recs, pos, nil
}

// Trim implements store.History.
func (s *Store) Trim(ctx context.Context, channel string, keep int, before time.Time) (int, error) {
	if err := s.enterName(ctx, channel); err != nil {
		return 0, err
	}
	n, err := s.run(ctx, trimScript, s.channelBase(channel), newEpoch(), strconv.Itoa(keep), optionalTime(before)).AsInt64()
	if err != nil {
		return 0, errorf("trim "+channel, err)
	}
	return int(n), nil
}

// Reset implements store.History.
func (s *Store) Reset(ctx context.Context, channel string) (store.Position, error) {
	if err := s.enterName(ctx, channel); err != nil {
		return store.Position{}, err
	}
	epoch := newEpoch()
	if err := s.run(ctx, resetScript, s.channelBase(channel), epoch).Error(); err != nil {
		return store.Position{}, errorf("reset "+channel, err)
	}
	return store.Position{Epoch: epoch}, nil
}

// Channels implements store.History.
func (s *Store) Channels(ctx context.Context, after string, limit int) ([]string, error) {
	return s.list(ctx, s.channelIndex(), s.channelBase, after, limit)
}

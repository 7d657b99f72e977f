package embedded

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldpush/herald/internal/store"
)

// Channels implements store.History.
func (s *Store) Channels(ctx context.Context, after string, limit int) ([]string, error) {
	return s.list(ctx, after, limit, prefixHistory)
}

// Users implements store.Inbox.
func (s *Store) Users(ctx context.Context, after string, limit int) ([]string, error) {
	return s.list(ctx, after, limit, prefixInbox, prefixDevice, prefixReceipt)
}

// list returns, in order, at most limit names that hold keys under any of
// prefixes, after after.
func (s *Store) list(ctx context.Context, after string, limit int, prefixes ...string) ([]string, error) {
	if limit <= 0 {
		return nil, store.ErrInvalidLimit
	}
	exit, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer exit()
	var out []string
	for _, p := range prefixes {
		names, err := s.names([]byte(p), after, limit)
		if err != nil {
			return nil, fmt.Errorf("list names: %w", err)
		}
		out = append(out, names...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return out[:min(len(out), limit)], nil
}

// names returns the names that keys under prefix start with, in order,
// after after ("": from the first), at most limit (0: all). A name ends at
// a NUL byte or at the end of the key.
func (s *Store) names(prefix []byte, after string, limit int) ([]string, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return nil, err
	}
	// past is the first key after every key of name.
	past := func(name string) []byte {
		return append(append(slices.Clip(prefix), name...), 1)
	}
	seek := prefix
	if after != "" {
		seek = past(after)
	}
	var out []string
	for ok := it.SeekGE(seek); ok && (limit <= 0 || len(out) < limit); ok = it.SeekGE(past(out[len(out)-1])) {
		k := it.Key()[len(prefix):]
		if i := bytes.IndexByte(k, 0); i >= 0 {
			k = k[:i]
		}
		out = append(out, string(k))
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

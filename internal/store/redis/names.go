package redis

import (
	"context"
	"slices"
	"strings"

	"github.com/heraldpush/herald/internal/store"
)

// index adds name to the sorted set idx, which lists names in byte order
// (every score 0). It runs after the script that gave name something to
// hold, so that list, which drops names that hold nothing, cannot drop
// it for good: see list.
func (s *Store) index(ctx context.Context, idx, name string) error {
	return s.client.Do(ctx, s.client.B().Zadd().Key(idx).ScoreMember().ScoreMember(0, name).Build()).Error()
}

// list pages through idx after after, and returns at most limit names
// whose base holds something. A name that holds nothing is dropped from
// idx and checked again: if a write gave it something meanwhile, it goes
// back. A write's index comes after its script, so either the second
// check sees the script or the index write comes after the drop.
func (s *Store) list(ctx context.Context, idx string, base func(string) string, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, store.ErrInvalidLimit
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	var out []string
	from := "-"
	if after != "" {
		from = "(" + after
	}
	for len(out) < limit {
		names, err := s.client.Do(ctx, s.client.B().Zrangebylex().Key(idx).Min(from).Max("+").Limit(0, int64(limit)).Build()).AsStrSlice()
		if err != nil {
			return nil, errorf("list names", err)
		}
		for _, name := range names {
			holds, err := s.holds(ctx, base(name))
			if err != nil {
				return nil, errorf("list names", err)
			}
			if !holds {
				if holds, err = s.unlist(ctx, idx, base, name); err != nil {
					return nil, errorf("list names", err)
				}
			}
			if holds && len(out) < limit {
				out = append(out, name)
			}
		}
		if len(names) < limit {
			break
		}
		from = "(" + names[len(names)-1]
	}
	return out, nil
}

// holds reports whether base has records, devices or receipts.
func (s *Store) holds(ctx context.Context, base string) (bool, error) {
	n, err := s.run(ctx, holdsScript, base).AsInt64()
	return n > 0, err
}

// unlist drops name from idx, then puts it back if it holds something
// after all, and says whether it does.
func (s *Store) unlist(ctx context.Context, idx string, base func(string) string, name string) (bool, error) {
	if err := s.client.Do(ctx, s.client.B().Zrem().Key(idx).Member(name).Build()).Error(); err != nil {
		return false, err
	}
	holds, err := s.holds(ctx, base(name))
	if err != nil || !holds {
		return false, err
	}
	return true, s.index(ctx, idx, name)
}

func slicesSortDevices(ds []store.Device) {
	slices.SortFunc(ds, func(a, b store.Device) int { return strings.Compare(a.Name, b.Name) })
}

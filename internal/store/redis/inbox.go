package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/rediskey"
	"github.com/heraldpush/herald/internal/store"
)

func (s *Store) userBase(user string) string { return rediskey.User(s.prefix, user) }

func (s *Store) userIndex() string { return s.prefix + ":users" }

// idKey holds the user and sequence of the direct message id.
func (s *Store) idKey(id string) string { return s.prefix + ":{m:" + id + "}" }

// Push implements store.Inbox.
func (s *Store) Push(ctx context.Context, user, id string, at time.Time, data []byte) (uint64, error) {
	return s.PushLive(ctx, user, id, at, data, nil)
}

// PushLive is Push that also publishes live, positioned, in the script
// that stores data: the nodes receive a user's messages in sequence
// order. Without Options.Publish, or with a nil live, it publishes
// nothing.
func (s *Store) PushLive(ctx context.Context, user, id string, at time.Time, data, live []byte) (uint64, error) {
	if err := s.enterName(ctx, user, id); err != nil {
		return 0, err
	}
	pub, payload := s.publish, rueidis.BinaryString(live)
	if live == nil {
		pub, payload = "", ""
	}
	answer, err := s.run(ctx, pushScript, s.userBase(user), encodeTime(at), rueidis.BinaryString(data), id, pub, payload).AsIntSlice()
	if err == nil && len(answer) != 2 {
		err = fmt.Errorf("malformed answer %v", answer)
	}
	if err != nil {
		return 0, errorf("push to "+user, err)
	}
	seq := uint64(answer[0])
	cmds := rueidis.Commands{s.client.B().Set().Key(s.idKey(id)).Value(user + "\x00" + strconv.FormatUint(seq, 10)).Build()}
	if answer[1] == 1 {
		// The inbox was empty: the user may have been pruned from the
		// index (an inbox that holds messages keeps its user listed).
		cmds = append(cmds, s.client.B().Zadd().Key(s.userIndex()).ScoreMember().ScoreMember(0, user).Build())
	}
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return seq, errorf("push to "+user, err)
		}
	}
	return seq, nil
}

// PushMany implements store.Inbox: on a single Redis, one script for
// them all (PushManyLive, publishing nothing); on Redis Cluster, whose
// scripts keep to one hash slot, one Push after another, the first error
// ending the call (those before it are stored; concurrent calls may
// interleave their sequences).
func (s *Store) PushMany(ctx context.Context, at time.Time, ps []store.Push) ([]uint64, error) {
	if err := store.CheckPushes(ps, validName); err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, nil
	}
	if s.Batches() {
		lps := make([]LivePush, len(ps))
		for i, p := range ps {
			lps[i] = LivePush{User: p.User, ID: p.ID, Data: p.Data}
		}
		return s.PushManyLive(ctx, at, lps)
	}
	seqs := make([]uint64, len(ps))
	for i, p := range ps {
		seq, err := s.Push(ctx, p.User, p.ID, at, p.Data)
		if err != nil {
			return nil, err
		}
		seqs[i] = seq
	}
	return seqs, nil
}

// LivePush is one message of PushManyLive: data for user's inbox under
// id, and live, what the nodes receive (nil: nothing).
type LivePush struct {
	User, ID   string
	Data, Live []byte
}

// Batches reports whether PushManyLive can be used: on a single Redis
// (or one behind Sentinel), not on Redis Cluster, where a script holds
// the keys of one slot only.
func (s *Store) Batches() bool { return s.client.Mode() != rueidis.ClientModeCluster }

// PushManyLive is PushLive for each of ps, accepted at at, in one script
// (one command for Redis to run, where PushLive takes two per message): a
// user named twice gets both, in order. It returns the sequences by index.
// On an error, any of ps may have been stored, as a broken link leaves
// PushLive's outcome unknown. It needs Batches.
func (s *Store) PushManyLive(ctx context.Context, at time.Time, ps []LivePush) ([]uint64, error) {
	if !s.Batches() {
		return nil, errors.New("push many: not on Redis Cluster")
	}
	for _, p := range ps {
		if err := validName(p.User); err != nil {
			return nil, err
		}
		if err := validName(p.ID); err != nil {
			return nil, err
		}
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	pub := s.publish
	keys := make([]string, 0, 1+2*len(ps))
	args := make([]string, 0, 2+5*len(ps))
	keys = append(keys, s.userIndex())
	args = append(args, encodeTime(at), pub)
	for _, p := range ps {
		base := s.userBase(p.User)
		keys = append(keys, base+":meta", s.idKey(p.ID))
		args = append(args, base, p.User, p.ID, rueidis.BinaryString(p.Data), rueidis.BinaryString(p.Live))
	}
	seqs, err := pushManyScript.Exec(ctx, s.client, keys, args).AsIntSlice()
	if err == nil && len(seqs) != len(ps) {
		err = fmt.Errorf("malformed answer %v", seqs)
	}
	if err != nil {
		return nil, errorf(fmt.Sprintf("push to %d users", len(ps)), err)
	}
	out := make([]uint64, len(seqs))
	for i, v := range seqs {
		out[i] = uint64(v)
	}
	return out, nil
}

// deviceOp runs a device script, whose answer is {code, bound}, then
// lists the user, who now has a known device.
func (s *Store) deviceOp(ctx context.Context, what string, script *rueidis.Lua, user, device string, args ...string) error {
	if err := s.enterName(ctx, user, device); err != nil {
		return err
	}
	what = what + " " + user + "/" + device
	msgs, err := s.run(ctx, script, s.userBase(user), append([]string{device}, args...)...).ToArray()
	if err != nil {
		return errorf(what, err)
	}
	if len(msgs) == 2 {
		code, _ := msgs[0].AsInt64()
		bound, _ := msgs[1].AsInt64()
		switch code {
		case codeBackwards:
			return fmt.Errorf("%w: %s is below %d", store.ErrAckBackwards, args[0], bound)
		case codeBeyond:
			return fmt.Errorf("%w: %s is above %d", store.ErrAckBeyondEnd, args[0], bound)
		}
	}
	if err := s.index(ctx, s.userIndex(), user); err != nil {
		return errorf(what, err)
	}
	return nil
}

// Ack implements store.Inbox; the time of the acknowledgement is this
// node's clock.
func (s *Store) Ack(ctx context.Context, user, device string, seq uint64) error {
	return s.deviceOp(ctx, "ack for", ackScript, user, device, strconv.FormatUint(seq, 10), encodeTime(time.Now()))
}

// Delivered implements store.Receipts.
func (s *Store) Delivered(ctx context.Context, user, device string, seq uint64, at time.Time) error {
	return s.deviceOp(ctx, "delivered to", deliveredScript, user, device, strconv.FormatUint(seq, 10), encodeTime(at))
}

// Seen implements store.Inbox.
func (s *Store) Seen(ctx context.Context, user, device string, at time.Time) error {
	if err := s.enterName(ctx, user, device); err != nil {
		return err
	}
	if err := s.run(ctx, seenScript, s.userBase(user), device, encodeTime(at)).Error(); err != nil {
		return errorf("seen "+user+"/"+device, err)
	}
	if err := s.index(ctx, s.userIndex(), user); err != nil {
		return errorf("seen "+user+"/"+device, err)
	}
	return nil
}

// Head implements store.Inbox.
func (s *Store) Head(ctx context.Context, user string) (uint64, error) {
	if err := s.enterName(ctx, user); err != nil {
		return 0, err
	}
	top, err := s.client.Do(ctx, s.client.B().Hget().Key(s.userBase(user)+":meta").Field("top").Build()).AsUint64()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, errorf("head of "+user, err)
	}
	return top, nil
}

// Pending implements store.Inbox.
func (s *Store) Pending(ctx context.Context, user, device string, limit int) (store.Pending, error) {
	if limit <= 0 {
		return store.Pending{}, store.ErrInvalidLimit
	}
	if err := s.enterName(ctx, user, device); err != nil {
		return store.Pending{}, err
	}
	what := "pending for " + user + "/" + device
	msgs, err := s.run(ctx, pendingScript, s.userBase(user), device, strconv.Itoa(limit)).ToArray()
	if err != nil || len(msgs) != 4 {
		return store.Pending{}, errorf(what, fmt.Errorf("malformed answer: %v", err))
	}
	acked, _ := msgs[0].AsUint64()
	known, _ := msgs[1].AsInt64()
	top, _ := msgs[2].AsUint64()
	entries, err := msgs[3].ToArray()
	if err != nil {
		return store.Pending{}, errorf(what, err)
	}
	recs, err := parseEntries(entries)
	if err != nil {
		return store.Pending{}, errorf(what, err)
	}
	p := store.Pending{Acked: acked, Records: recs, Known: known == 1}
	if len(recs) > 0 {
		p.Missed = recs[0].Offset - acked - 1
	} else {
		p.Missed = top - acked
	}
	return p, nil
}

// Expire implements store.Inbox. The index entries of the receipts it
// drops go after the script; one left behind is never believed (Receipt
// checks it against the user's receipts).
func (s *Store) Expire(ctx context.Context, user string, lim store.InboxLimits) (int, error) {
	if err := s.enterName(ctx, user); err != nil {
		return 0, err
	}
	what := "expire inbox of " + user
	out, err := s.run(ctx, expireScript, s.userBase(user), optionalTime(lim.Before),
		strconv.Itoa(lim.MaxCount), strconv.FormatInt(lim.MaxBytes, 10), optionalTime(lim.ReceiptsBefore)).AsStrSlice()
	if err != nil || len(out) == 0 {
		return 0, errorf(what, fmt.Errorf("malformed answer: %v", err))
	}
	n, _ := strconv.Atoi(out[0])
	if ids := out[1:]; len(ids) > 0 {
		cmds := make(rueidis.Commands, len(ids))
		for i, id := range ids {
			cmds[i] = s.client.B().Del().Key(s.idKey(id)).Build()
		}
		for _, r := range s.client.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return n, errorf(what, err)
			}
		}
	}
	return n, nil
}

// Devices implements store.Inbox.
func (s *Store) Devices(ctx context.Context, user string) ([]store.Device, error) {
	if err := s.enterName(ctx, user); err != nil {
		return nil, err
	}
	kv, err := s.run(ctx, devicesScript, s.userBase(user)).AsStrSlice()
	if err != nil {
		return nil, errorf("devices of "+user, err)
	}
	var out []store.Device
	for i := 0; i+1 < len(kv); i += 2 {
		parts := strings.Split(kv[i+1], ":")
		if len(parts) != 3 {
			return nil, errorf("devices of "+user, fmt.Errorf("malformed device %q", kv[i]))
		}
		acked, _ := strconv.ParseUint(parts[0], 10, 64)
		delivered, _ := strconv.ParseUint(parts[1], 10, 64)
		out = append(out, store.Device{Name: kv[i], Acked: acked, Delivered: delivered, Seen: decodeTime(parts[2])})
	}
	slicesSortDevices(out)
	return out, nil
}

// Users implements store.Inbox.
func (s *Store) Users(ctx context.Context, after string, limit int) ([]string, error) {
	return s.list(ctx, s.userIndex(), s.userBase, after, limit)
}

// Receipt implements store.Receipts.
func (s *Store) Receipt(ctx context.Context, id string) (store.Receipt, error) {
	if err := s.enterName(ctx, id); err != nil {
		return store.Receipt{}, err
	}
	what := "receipt of " + id
	v, err := s.client.Do(ctx, s.client.B().Get().Key(s.idKey(id)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return store.Receipt{}, fmt.Errorf("%w: message %s", store.ErrNotFound, id)
	}
	if err != nil {
		return store.Receipt{}, errorf(what, err)
	}
	user, seqText, ok := strings.Cut(v, "\x00")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil {
		return store.Receipt{}, errorf(what, fmt.Errorf("malformed index entry %q", v))
	}
	out, err := s.run(ctx, receiptScript, s.userBase(user), seqText, id).AsStrSlice()
	if err != nil {
		return store.Receipt{}, errorf(what, err)
	}
	if len(out) == 0 {
		return store.Receipt{}, fmt.Errorf("%w: message %s", store.ErrNotFound, id)
	}
	r := store.Receipt{ID: id, User: user, Seq: seq, Accepted: decodeTime(out[0])}
	for i := 1; i+3 < len(out); i += 4 {
		d := store.DeviceReceipt{Device: out[i]}
		if out[i+2] != "" {
			d.Delivered = decodeTime(out[i+2])
		}
		if out[i+3] != "" {
			d.Acked = decodeTime(out[i+3])
		}
		r.Devices = append(r.Devices, d)
	}
	return r, nil
}

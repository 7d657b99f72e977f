package hub

// indexThreshold is the size above which a set keeps an index for O(1)
// removal. Most sets (a user's connections, a personal channel) hold one or
// two members and stay a bare slice.
const indexThreshold = 16

// set is a set of subscribers that iterates as a slice: fan-out walks
// contiguous memory, and small sets cost a few words.
type set struct {
	members []Subscriber
	index   map[Subscriber]int // nil while len(members) <= indexThreshold
}

func (s *set) len() int { return len(s.members) }

func (s *set) find(sub Subscriber) int {
	if s.index != nil {
		if i, ok := s.index[sub]; ok {
			return i
		}
		return -1
	}
	for i, m := range s.members {
		if m == sub {
			return i
		}
	}
	return -1
}

// add inserts sub and reports whether it was absent.
func (s *set) add(sub Subscriber) bool {
	if s.find(sub) >= 0 {
		return false
	}
	s.members = append(s.members, sub)
	if s.index != nil {
		s.index[sub] = len(s.members) - 1
	} else if len(s.members) > indexThreshold {
		s.index = make(map[Subscriber]int, len(s.members)*2)
		for i, m := range s.members {
			s.index[m] = i
		}
	}
	return true
}

// remove deletes sub and reports whether it was present.
func (s *set) remove(sub Subscriber) bool {
	i := s.find(sub)
	if i < 0 {
		return false
	}
	last := len(s.members) - 1
	moved := s.members[last]
	s.members[i] = moved
	s.members[last] = nil
	s.members = s.members[:last]
	if s.index != nil {
		delete(s.index, sub)
		if i != last {
			s.index[moved] = i
		}
		if len(s.members) <= indexThreshold/2 {
			s.index = nil
		}
	}
	// Give memory back when a large set has mostly emptied.
	if cap(s.members) > 64 && len(s.members) < cap(s.members)/4 {
		s.members = append([]Subscriber(nil), s.members...)
	}
	return true
}

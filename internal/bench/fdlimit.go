package bench

import (
	"fmt"
	"syscall"
)

// checkFileLimit raises the soft open-file limit to the hard one if needed
// and fails when need descriptors still do not fit.
func checkFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // no limit to read: let the dials tell
	}
	if uint64(need) <= lim.Cur {
		return nil
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	if uint64(need) > lim.Cur {
		return fmt.Errorf("%w: the run needs about %d file descriptors, the limit is %d; use fewer clients or raise the limit (ulimit -n)", ErrFileLimit, need, lim.Cur)
	}
	return nil
}

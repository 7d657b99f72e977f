// Package fsutil holds the file-system steps that durable writes share.
package fsutil

import "os"

// SyncDir makes the entries of dir durable: a new or renamed file's name
// lives in its directory, and survives a crash only once the directory is
// synced.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

package h5

// #include <hdf5.h>
// #include <stdlib.h>
// #include <string.h>
//
// // bbd_h5_link returns the type of the link name in loc: 0 hard, 1 soft,
// // 2 external or user-defined, -1 missing or error. It does not follow the
// // link.
// static int bbd_h5_link(hid_t loc, const char *name) {
//     H5L_info_t info;
//     if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return -1;
//     if (H5Lget_info(loc, name, &info, H5P_DEFAULT) < 0) return -1;
//     if (info.type == H5L_TYPE_HARD) return 0;
//     if (info.type == H5L_TYPE_SOFT) return 1;
//     return 2;
// }
//
// // bbd_h5_object returns the kind of the object a hard link leads to (0
// // group, 1 dataset, 2 other, -1 error) and its identity in the file.
// static int bbd_h5_object(hid_t loc, const char *name, unsigned long *fileno, unsigned char key[16]) {
//     memset(key, 0, 16);
// #if H5_VERSION_GE(1, 12, 0)
//     H5O_info2_t info;
//     if (H5Oget_info_by_name3(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
//     memcpy(key, &info.token, sizeof(info.token) < 16 ? sizeof(info.token) : 16);
// #else
//     H5O_info_t info;
//     if (H5Oget_info_by_name2(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
//     memcpy(key, &info.addr, sizeof(info.addr) < 16 ? sizeof(info.addr) : 16);
// #endif
//     *fileno = info.fileno;
//     if (info.type == H5O_TYPE_GROUP) return 0;
//     if (info.type == H5O_TYPE_DATASET) return 1;
//     return 2;
// }
import "C"

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"unsafe"

	"gonum.org/v1/hdf5"
)

// Limits of Walk: a file made to exhaust the walker fails with an error.
const (
	// MaxDepth is how deep below its start Walk goes.
	MaxDepth = 8
	// MaxMembers is the most members Walk lists in one group, and in all.
	MaxMembers = 1 << 16
)

// LinkKind says what a link is, without following it.
type LinkKind int

// Link kinds.
const (
	NoLink       LinkKind = iota // no such link (or unreadable)
	HardLink                     // an object of this file
	SoftLink                     // a path, resolved when opened
	ExternalLink                 // another file (or a user-defined link)
)

// Link reports the kind of the link name (a path) in loc, without following
// it. bbd follows hard links only: soft and external links could lead out of
// the file (to any HDF5 file on the defender's disk) or in circles.
func Link(loc interface{ ID() int64 }, name string) LinkKind {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	switch C.bbd_h5_link(C.hid_t(loc.ID()), cname) {
	case 0:
		return HardLink
	case 1:
		return SoftLink
	case 2:
		return ExternalLink
	}
	return NoLink
}

// HardLinkExists reports whether path (relative to loc) is a chain of hard
// links to an object: every component is checked, so that no soft or external
// link is followed on the way.
func HardLinkExists(loc interface{ ID() int64 }, p string) bool {
	cur := ""
	for _, part := range splitPath(p) {
		cur = path.Join(cur, part)
		if Link(loc, cur) != HardLink {
			return false
		}
	}
	return cur != ""
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// objectKey identifies an object of an open file.
type objectKey struct {
	fileno uint64
	key    [16]byte
}

// Walk calls fn with the path of every dataset under the group root of f
// (recursively, sorted within each group), following hard links only. Each
// object is visited once, however many links lead to it (so a hard-link
// cycle ends), at most MaxDepth groups deep and over at most MaxMembers
// members in all; a soft or external link, or a file beyond these limits, is
// an error naming the path.
func Walk(f *hdf5.File, root string, fn func(dataset string) error) error {
	w := &walker{f: f, seen: map[objectKey]bool{}, fn: fn}
	k, kind, err := objectInfo(f, root)
	if err != nil {
		return err
	}
	if kind != 0 {
		return fmt.Errorf("%s: expected a group, found another object", root)
	}
	w.seen[k] = true
	return w.group(root, 0)
}

type walker struct {
	f       *hdf5.File
	seen    map[objectKey]bool
	members int
	fn      func(string) error
}

// objectInfo returns the identity of the object at p in f and its kind (0
// group, 1 dataset, 2 other).
func objectInfo(f *hdf5.File, p string) (objectKey, int, error) {
	cname := C.CString(p)
	defer C.free(unsafe.Pointer(cname))
	var fileno C.ulong
	var key [16]C.uchar
	kind := C.bbd_h5_object(C.hid_t(f.ID()), cname, &fileno, &key[0])
	if kind < 0 {
		return objectKey{}, 0, fmt.Errorf("%s: unreadable object", p)
	}
	k := objectKey{fileno: uint64(fileno)}
	for i := range key {
		k.key[i] = byte(key[i])
	}
	return k, int(kind), nil
}

func (w *walker) group(p string, depth int) error {
	if depth >= MaxDepth {
		return fmt.Errorf("%s: groups nested deeper than %d levels", p, MaxDepth)
	}
	names, err := Members(w.f, p)
	if err != nil {
		return err
	}
	w.members += len(names)
	if w.members > MaxMembers {
		return fmt.Errorf("%s: more than %d members in all", p, MaxMembers)
	}
	for _, name := range names {
		full := path.Join(p, name)
		switch Link(w.f, full) {
		case HardLink:
		case SoftLink, ExternalLink:
			return fmt.Errorf("%s: a soft or external link (bbd follows hard links only)", full)
		default:
			return fmt.Errorf("%s: unreadable link", full)
		}
		k, kind, err := objectInfo(w.f, full)
		if err != nil {
			return err
		}
		if w.seen[k] {
			continue // another link to an object already visited
		}
		w.seen[k] = true
		switch kind {
		case 0:
			if err := w.group(full, depth+1); err != nil {
				return err
			}
		case 1:
			if err := w.fn(full); err != nil {
				return err
			}
		}
	}
	return nil
}

// Members returns the names of the members of group p of f, sorted; a group
// of more than MaxMembers members is an error.
func Members(f *hdf5.File, p string) ([]string, error) {
	g, err := f.OpenGroup(p)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot open group: %w", p, err)
	}
	defer g.Close()
	n, err := g.NumObjects()
	if err != nil {
		return nil, fmt.Errorf("%s: cannot list group: %w", p, err)
	}
	if n > MaxMembers {
		return nil, fmt.Errorf("%s: %d members, expected at most %d", p, n, MaxMembers)
	}
	names := make([]string, 0, n)
	for i := uint(0); i < n; i++ {
		name, err := g.ObjectNameByIndex(i)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot list group: %w", p, err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

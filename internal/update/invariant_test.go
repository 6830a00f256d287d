package update

import "testing"

// TestSameButEdited: the fuzz invariant itself catches what it should.
func TestSameButEdited(t *testing.T) {
	const before = "a: &x 1 # c\nimage: app:1.0 # keep\nf: {image: app:1.0, n: *x}\nb: 2\n"
	edited := map[[2]int]string{{2, 8}: "app:1.10", {3, 12}: "app:1.10"}
	for _, tc := range []struct {
		name, after string
		ok          bool
	}{
		{"the edit", "a: &x 1 # c\nimage: app:1.10 # keep\nf: {image: app:1.10, n: *x}\nb: 2\n", true},
		{"quoted", "a: &x 1 # c\nimage: \"app:1.10\" # keep\nf: {image: app:1.10, n: *x}\nb: 2\n", true},
		{"wrong value", "a: &x 1 # c\nimage: app:1.11 # keep\nf: {image: app:1.10, n: *x}\nb: 2\n", false},
		{"comment", "a: &x 1 # c\nimage: app:1.10 # kept\nf: {image: app:1.10, n: *x}\nb: 2\n", false},
		{"other value", "a: &x 1 # c\nimage: app:1.10 # keep\nf: {image: app:1.10, n: *x}\nb: 3\n", false},
		{"anchor", "a: &y 1 # c\nimage: app:1.10 # keep\nf: {image: app:1.10, n: *y}\nb: 2\n", false},
		{"style", "a: &x '1' # c\nimage: app:1.10 # keep\nf: {image: app:1.10, n: *x}\nb: 2\n", false},
		{"moved before", "a:  &x 1 # c\nimage: app:1.10 # keep\nf: {image: app:1.10, n: *x}\nb: 2\n", false},
		{"uneven shift", "a: &x 1 # c\nimage: app:1.10 # keep\nf: {image: app:1.10, n:  *x}\nb: 2\n", false},
		{"line", "a: &x 1 # c\n\nimage: app:1.10 # keep\nf: {image: app:1.10, n: *x}\nb: 2\n", false},
		{"tag", "a: &x 1 # c\nimage: !!binary app:1.10 # keep\nf: {image: app:1.10, n: *x}\nb: 2\n", false},
	} {
		err := sameButEdited([]byte(before), []byte(tc.after), edited)
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

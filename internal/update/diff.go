package update

import (
	"bytes"
	"fmt"
	"strings"
)

// LineDiff renders the difference between two versions of a file that an edit of this
// package produced, as unified-diff hunks of one line each. Edits splice values within lines
// and never add or remove lines, so comparing line by line is exact for them.
func LineDiff(file string, before, after []byte) string {
	a, b := bytes.Split(before, []byte("\n")), bytes.Split(after, []byte("\n"))
	var out strings.Builder
	fmt.Fprintf(&out, "--- a/%s\n+++ b/%s\n", file, file)
	for i := 0; i < len(a) && i < len(b); i++ {
		if !bytes.Equal(a[i], b[i]) {
			fmt.Fprintf(&out, "@@ -%d +%d @@\n-%s\n+%s\n", i+1, i+1, a[i], b[i])
		}
	}
	return out.String()
}

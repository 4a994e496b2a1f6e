package crashstore

import (
	"strings"
	"testing"
	"time"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{"4dd21cc0-49d9-46ae-a42b-fadb42090928", true},
		{"0bba929f-8721-460c-dead-a43c20071025", true},
		{"4DD21CC0-49D9-46AE-A42B-FADB42090928", true},
		{"6f1a3c2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f", true},
		{"", false},
		{"nothing", false},
		{"4dd21cc0-49d9-46ae-a42b-fadb4209092", false},   // 35
		{"4dd21cc0-49d9-46ae-a42b-fadb420909281", false}, // 37
		{"4dd21cc049d9-46ae-a42b-fadb42090928-", false},  // dash misplaced
		{"4dd21cc0_49d9_46ae_a42b_fadb42090928", false},
		{"4dd21cc0-49d9-46ae-a42b-fadb4209092g", false},
		{"4dd21cc0-49d9-46ae-a42b-fadb4209092 ", false},
		{"4dd21cc0-49d9-46ae-a42b-fadb4209092\x00", false},
		{"4dd21cc0-49d9-46ae-a42b-fadb420909/8", false},
		{"../../../../../../../../etc/passwd0", false},
		{"..-....-....-....-......../../....", false},
		{"4dd21cc0-49d9-46ae-a42b-fadb420909é", false}, // 36 bytes, not ASCII
		{"4dd21cc0-49d9-46ae-a42b-fadb4209092\n", false},
		{"'; drop table jobs; --aaaaaaaaaaaaaa", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// TestIDDateAndDepth covers classic tests 60-63: depth digits 1..4 round
// trip, 0 means 4 (old YYYYMMDD tails), malformed tails decode to nothing.
func TestIDDateAndDepth(t *testing.T) {
	t.Parallel()
	const prefix = "12345678-1234-1234-1234-12345" // 29 characters; 7 to go
	tests := []struct {
		id        string
		wantDate  string // "" = none
		wantDepth int
	}{
		{"4dd21cc0-49d9-46ae-a42b-fadb42090928", "2009-09-28", 2},
		{prefix + "1081225", "2008-12-25", 1},
		{prefix + "2081225", "2008-12-25", 2},
		{prefix + "3081125", "2008-11-25", 3},
		{prefix + "4000101", "2000-01-01", 4},
		{prefix + "0991231", "2099-12-31", 4},
		{prefix + "9081225", "2008-12-25", 9}, // not capped, as classic
		{"0bba929f-8721-460c-dead-a43c20071025", "2007-10-25", 4},
		{"22adfb61-f75b-11dc-dead-001320081225", "2008-12-25", 4},
		{"0ba32a30-2476-4724-dead-de17e3081125", "2008-11-25", 3},
		{"0bae7049-bbff-49f2-dead-7e9fe2081125", "2008-11-25", 2},
		{prefix + "2081325", "", 4},                     // month 13
		{prefix + "2090230", "", 4},                     // February 30
		{prefix + "2081200", "", 4},                     // day 0
		{prefix + "2080025", "", 4},                     // month 0
		{prefix + "x081225", "", 4},                     // depth not a digit
		{prefix + "20812a5", "", 4},                     // date not digits
		{"6f1a3c2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f", "", 4}, // plain uuid
		{"bogusdatax3yymmdd", "", 4},
		{"081225", "", 4},
		{"", "", 4},
	}
	for _, tt := range tests {
		date, ok := IDDate(tt.id)
		got := ""
		if ok {
			got = date.Format(time.DateOnly)
			if date.Location() != time.UTC || date.Hour() != 0 {
				t.Errorf("IDDate(%q) = %v, want midnight UTC", tt.id, date)
			}
		}
		if got != tt.wantDate {
			t.Errorf("IDDate(%q) = %q, %v; want %q", tt.id, got, ok, tt.wantDate)
		}
		if d := IDDepth(tt.id); d != tt.wantDepth {
			t.Errorf("IDDepth(%q) = %d, want %d", tt.id, d, tt.wantDepth)
		}
	}
}

// TestNameRel is classic test 46 (relativeNameParts) and checks the radix
// column of the classic fixtures.
func TestNameRel(t *testing.T) {
	t.Parallel()
	const prefix = "12345678-1234-1234-1234-12345"
	tests := []struct{ id, want string }{
		{prefix + "1081225", "12"},
		{prefix + "2081225", "12/34"},
		{prefix + "3081225", "12/34/56"},
		{prefix + "0081225", "12/34/56/78"},
		{prefix + "4081225", "12/34/56/78"},
		{"6f1a3c2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f", "6f/1a/3c/2e"},
	}
	for _, tt := range tests {
		if got := nameRel(tt.id); got != tt.want {
			t.Errorf("nameRel(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
	for _, fx := range classic(t, "") {
		if got := nameRel(fx.id); got != fx.radix {
			t.Errorf("nameRel(%q) = %q, want the classic %q", fx.id, got, fx.radix)
		}
	}
	if got := nameRel(prefix + "5081225"); !strings.HasPrefix(got, "12/34/56/78/") {
		t.Errorf("depth 5: %q", got)
	}
}

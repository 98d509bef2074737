package server

import (
	"strings"
	"testing"

	"github.com/theaspect/aggregator"
)

// BenchmarkBigItem: one 15 MB item from PHP's answer to the message the
// send queue holds. B/op counts the copies made on the way (the answer
// itself is the pool's).
func BenchmarkBigItem(b *testing.B) {
	out := []byte(`{"items":[{"code":"big-1","brand":"b","name":"` + strings.Repeat("x", 15<<20) + `"}]}`)
	tail := head{Session: "1", Task: TaskItems, ID: 2, Status: StatusSending}.encode()[1:]
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		res, _, err := checkOutput(aggregator.Items, out, "items", "suppliers")
		if err != nil || len(res.Items) != 1 {
			b.Fatal(err)
		}
		if m := itemMessage(res.Items[0], tail); len(m) < 15<<20 {
			b.Fatal("short message")
		}
	}
}

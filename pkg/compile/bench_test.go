package compile_test

import (
	"fmt"
	"testing"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
)

// BenchmarkCompileForwards: validation and compilation of a policy with
// 10,000 port forwards (the overlap check must stay O(n log n)).
func BenchmarkCompileForwards(b *testing.B) {
	p := basePolicy()
	p.Interfaces.LANNetworks = []string{"10.0.0.0/8"}
	for i := 0; i < 10000; i++ {
		p.Forwards = append(p.Forwards, policy.Forward{
			Name: fmt.Sprintf("f%d", i), Proto: "tcp", Ports: []string{fmt.Sprint(20000 + i)},
			To: fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%250+1),
		})
	}
	cat := catalog.Default()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := compile.Compile(p, cat); err != nil {
			b.Fatal(err)
		}
	}
}

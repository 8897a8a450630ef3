// franz-go round trip, run by compat/tests/test_franz_go.py:
//
//	go run . BOOTSTRAP TOPIC COUNT
//
// kadm creates TOPIC with 3 partitions; a default kgo producer (idempotent,
// acks=all) sends COUNT keyed records with headers, each compressed with the
// codec of its index (none, gzip, snappy, lz4, zstd in turn, one batch each by
// partitioning on the record); every ack's partition/offset is recorded. A
// consumer of explicit partitions from the start (no group) reads them back and
// each record is checked at its acknowledged position. Prints one line
//
//	RESULT produced=N consumed=N mismatches=M
//
// and exits 1 on any mismatch.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type pos struct {
	partition int32
	offset    int64
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: go run . BOOTSTRAP TOPIC COUNT")
	}
	bootstrap, topic := os.Args[1], os.Args[2]
	count, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fail("COUNT: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	admin, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		fail("admin client: %v", err)
	}
	resp, err := kadm.NewClient(admin).CreateTopic(ctx, 3, 1, nil, topic)
	if err != nil || resp.Err != nil {
		fail("create topic: %v %v", err, resp.Err)
	}
	admin.Close()

	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	acked := map[string]pos{}
	for c, codec := range codecs {
		producer, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
		if err != nil {
			fail("producer: %v", err)
		}
		var recs []*kgo.Record
		for i := c; i < count; i += len(codecs) {
			recs = append(recs, &kgo.Record{
				Key:     []byte(fmt.Sprintf("key-%d", i)),
				Value:   []byte(fmt.Sprintf("value-%d", i)),
				Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}, {Key: "codec", Value: []byte(strconv.Itoa(c))}},
			})
		}
		results := producer.ProduceSync(ctx, recs...)
		if err := results.FirstErr(); err != nil {
			fail("produce (codec %d): %v", c, err)
		}
		for _, r := range results {
			acked[string(r.Record.Key)] = pos{r.Record.Partition, r.Record.Offset}
		}
		producer.Close()
	}

	offsets := map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumePartitions(offsets))
	if err != nil {
		fail("consumer: %v", err)
	}
	defer consumer.Close()
	mismatches, consumed := 0, 0
	seen := map[string]bool{}
	for consumed < count {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("timed out after %d of %d records", consumed, count)
		}
		fetches.EachError(func(t string, p int32, err error) { fail("fetch %s-%d: %v", t, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			consumed++
			key := string(r.Key)
			want, ok := acked[key]
			i, _ := strconv.Atoi(key[len("key-"):])
			switch {
			case !ok || seen[key]:
				mismatches++
			case want.partition != r.Partition || want.offset != r.Offset:
				mismatches++
			case string(r.Value) != fmt.Sprintf("value-%d", i) || len(r.Headers) != 2 || string(r.Headers[0].Value) != strconv.Itoa(i):
				mismatches++
			}
			seen[key] = true
		})
	}
	fmt.Printf("RESULT produced=%d consumed=%d mismatches=%d\n", len(acked), consumed, mismatches)
	if mismatches != 0 || len(acked) != count {
		os.Exit(1)
	}
}

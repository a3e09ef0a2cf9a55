// Go cluster clients against tandem servers' client ports (cluster_clients_more.rs), built
// from Debian's packages in GOPATH mode (GO111MODULE=off GOPATH=/usr/share/gocode):
//
//	main LIBRARY SEED_PORT
//
// LIBRARY is "go-redis" (gopkg.in/redis.v5, ClusterClient) or "redisc"
// (github.com/mna/redisc over redigo). The cluster client is built from the one seed port,
// then the scenario of cluster_clients_more.rs runs: SET and GET of keys over every group,
// MSET/MGET in one hash tag, an MGET across slots (the server's CROSSSLOT), the keys read
// through a second client that reads from replicas (READONLY), then "READY" and a wait for a
// line on stdin (the test kills a primary meanwhile), then more SETs and every key read back
// through the first client. One result line per step on stdout; retries on stderr.
// The Rust test judges the output.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	goredis "gopkg.in/redis.v5"
)

// keys written before and after the kill.
const keys = 300

// client runs one command through a cluster client.
type client interface {
	do(args ...interface{}) (interface{}, error)
}

type goRedisClient struct{ c *goredis.ClusterClient }

func (g goRedisClient) do(args ...interface{}) (interface{}, error) {
	cmd := goredis.NewCmd(args...)
	// Process routes, follows MOVED and tries another node on network errors.
	_ = g.c.Process(cmd)
	v, err := cmd.Result()
	if err == goredis.Nil {
		return nil, nil
	}
	return v, err
}

type rediscClient struct {
	c *redisc.Cluster
	// readOnly: reads go to a replica (READONLY first).
	readOnly bool
}

func (r rediscClient) do(args ...interface{}) (interface{}, error) {
	conn := r.c.Get()
	defer conn.Close()
	if r.readOnly {
		if err := redisc.ReadOnlyConn(conn); err != nil {
			return nil, err
		}
	}
	// RetryConn follows MOVED (refreshing the slot map) and waits on TRYAGAIN.
	retry, err := redisc.RetryConn(conn, 8, 20*time.Millisecond)
	if err != nil {
		return nil, err
	}
	return retry.Do(args[0].(string), args[1:]...)
}

// text renders a reply: strings as they are, arrays space-separated, nil as "(nil)".
func text(v interface{}) string {
	switch v := v.(type) {
	case nil:
		return "(nil)"
	case []byte:
		return string(v)
	case []interface{}:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = text(e)
		}
		return strings.Join(parts, " ")
	default:
		return fmt.Sprint(v)
	}
}

// retry runs a command until it succeeds or the deadline passes; each new error is logged.
func retry(c client, deadline time.Time, args ...interface{}) (string, bool) {
	last := ""
	for {
		v, err := c.do(args...)
		if err == nil {
			return text(v), true
		}
		if err.Error() != last {
			last = err.Error()
			fmt.Fprintf(os.Stderr, "%v: retrying after %v\n", args, err)
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "%v: gave up\n", args)
			return "", false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connect builds a cluster client from the seed; with readOnly, one that sends READONLY and
// reads from replicas where the library can.
func connect(library string, seed string, readOnly bool) client {
	switch library {
	case "go-redis":
		c := goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs:       []string{seed},
			DialTimeout: 2 * time.Second,
			ReadTimeout: 5 * time.Second,
			ReadOnly:    readOnly,
		})
		// go-redis v5 reads COMMAND entries of exactly six fields (Redis <= 5); Redis 7's,
		// and so tandem's, have ten. Without that table the client keeps no slot map: every
		// command goes to a random known node and follows MOVED from there.
		if err := c.Command().Err(); err != nil {
			fmt.Fprintf(os.Stderr, "note: go-redis keeps no slot map: COMMAND: %v\n", err)
		}
		return goRedisClient{c}
	case "redisc":
		cluster := &redisc.Cluster{
			StartupNodes: []string{seed},
			DialOptions: []redis.DialOption{
				redis.DialConnectTimeout(2 * time.Second),
				redis.DialReadTimeout(5 * time.Second),
				redis.DialWriteTimeout(5 * time.Second),
			},
			CreatePool: func(addr string, options ...redis.DialOption) (*redis.Pool, error) {
				return &redis.Pool{
					MaxIdle:     4,
					IdleTimeout: time.Minute,
					Dial:        func() (redis.Conn, error) { return redis.Dial("tcp", addr, options...) },
				}, nil
			},
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := cluster.Refresh()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "redisc: no slot map: %v\n", err)
				os.Exit(1)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return rediscClient{cluster, readOnly}
	}
	fmt.Fprintf(os.Stderr, "unknown library %q\n", library)
	os.Exit(2)
	return nil
}

// writeAll sets PREFIX:i = value:i for every i; returns how many were acknowledged. The
// slowest SET (with its retries) goes to stderr: across a failover, how long the client waited.
func writeAll(c client, prefix string, deadline time.Time) int {
	acked := 0
	var slowest time.Duration
	for i := 0; i < keys; i++ {
		start := time.Now()
		if reply, ok := retry(c, deadline, "SET", fmt.Sprintf("%s:%d", prefix, i), fmt.Sprintf("value:%d", i)); ok && reply == "OK" {
			acked++
		}
		if took := time.Since(start); took > slowest {
			slowest = took
		}
	}
	fmt.Fprintf(os.Stderr, "slowest SET %s:*: %d ms\n", prefix, slowest.Milliseconds())
	return acked
}

// readAll counts the keys PREFIX:i whose value reads back as value:i.
func readAll(c client, prefix string, deadline time.Time) int {
	found := 0
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("%s:%d", prefix, i)
		reply, ok := retry(c, deadline, "GET", key)
		if ok && reply == fmt.Sprintf("value:%d", i) {
			found++
		} else {
			fmt.Fprintf(os.Stderr, "%s reads %q\n", key, reply)
		}
	}
	return found
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: main go-redis|redisc SEED_PORT")
		os.Exit(2)
	}
	c := connect(os.Args[1], "127.0.0.1:"+os.Args[2], false)

	deadline := time.Now().Add(60 * time.Second)
	fmt.Printf("set %d\n", writeAll(c, "key", deadline))
	fmt.Printf("get %d\n", readAll(c, "key", deadline))
	if _, ok := retry(c, deadline, "MSET", "{tag}a", "1", "{tag}b", "2"); ok {
		reply, _ := retry(c, deadline, "MGET", "{tag}a", "{tag}b")
		fmt.Printf("tagged %s\n", reply)
	}
	if _, err := c.do("MGET", "{a}x", "{b}x"); err != nil {
		fmt.Printf("crossslot %v\n", err)
	} else {
		fmt.Println("crossslot accepted")
	}

	// Replica reads: a backup answers MOVED to its primary (it never serves), which the
	// client follows.
	replicas := connect(os.Args[1], "127.0.0.1:"+os.Args[2], true)
	fmt.Printf("replica-get %d\n", readAll(replicas, "key", deadline))

	fmt.Println("READY")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintf(os.Stderr, "stdin: %v\n", err)
		os.Exit(1)
	}
	deadline = time.Now().Add(90 * time.Second)
	fmt.Printf("after-set %d\n", writeAll(c, "after", deadline))
	fmt.Printf("after-get %d\n", readAll(c, "key", deadline)+readAll(c, "after", deadline))
	fmt.Println("DONE")
}

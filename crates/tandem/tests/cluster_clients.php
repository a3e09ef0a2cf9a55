<?php
// phpredis's RedisCluster against tandem servers' client ports (cluster_clients_more.rs):
//
//   php cluster_clients.php SEED_PORT
//
// The cluster client is built from the one seed port, then the scenario of
// cluster_clients_more.rs runs: SET and GET of keys over every group, MSET/MGET in one hash
// tag, an MGET across slots sent as one command (rawCommand, routed by its first key: the
// server's CROSSSLOT), the keys read through a second client that reads from replicas, then
// "READY" and a wait for a line on stdin (the test kills a primary meanwhile), then more SETs
// and every key read back through the first client. One result line per step on stdout;
// retries on stderr. The Rust test judges the output.

const KEYS = 300;

// Runs $action until it succeeds or $deadline (hrtime seconds) passes. phpredis answers a
// server error with false and getLastError(), a cluster failure with an exception; a reply of
// false without an error is a missing key. Returns [ok, reply].
function retry(RedisCluster $c, float $deadline, string $what, callable $action): array
{
    $last = '';
    while (true) {
        $c->clearLastError();
        try {
            $reply = $action($c);
            $error = $c->getLastError();
            if ($reply !== false || $error === null) {
                return [true, $reply];
            }
        } catch (RedisClusterException | RedisException $e) {
            $error = get_class($e) . ': ' . $e->getMessage();
        }
        if ($error !== $last) {
            $last = $error;
            fwrite(STDERR, "$what: retrying after $error\n");
        }
        if (now() > $deadline) {
            fwrite(STDERR, "$what: gave up\n");
            return [false, null];
        }
        usleep(50000);
    }
}

function now(): float
{
    return hrtime(true) / 1e9;
}

function connect(string $seed): RedisCluster
{
    $deadline = now() + 30;
    while (true) {
        try {
            // name, seeds, connect timeout, read timeout, persistent.
            return new RedisCluster(null, [$seed], 2.0, 5.0, false);
        } catch (RedisClusterException $e) {
            if (now() > $deadline) {
                throw $e;
            }
            fwrite(STDERR, "connect: retrying after " . $e->getMessage() . "\n");
            usleep(100000);
        }
    }
}

// Sets PREFIX:i = value:i for every i; returns how many were acknowledged. The slowest SET
// (with its retries) goes to stderr: across a failover, how long the client waited.
function write_all(RedisCluster $c, string $prefix, float $deadline): int
{
    $acked = 0;
    $slowest = 0.0;
    for ($i = 0; $i < KEYS; $i++) {
        $start = now();
        [$ok, $reply] = retry($c, $deadline, "SET $prefix:$i", fn ($c) => $c->set("$prefix:$i", "value:$i"));
        if ($ok && $reply === true) {
            $acked++;
        }
        $slowest = max($slowest, now() - $start);
    }
    fwrite(STDERR, sprintf("slowest SET %s:*: %d ms\n", $prefix, $slowest * 1000));
    return $acked;
}

// Counts the keys PREFIX:i whose value reads back as value:i.
function read_all(RedisCluster $c, string $prefix, float $deadline): int
{
    $found = 0;
    for ($i = 0; $i < KEYS; $i++) {
        [$ok, $reply] = retry($c, $deadline, "GET $prefix:$i", fn ($c) => $c->get("$prefix:$i"));
        if ($ok && $reply === "value:$i") {
            $found++;
        } else {
            fwrite(STDERR, "$prefix:$i reads " . var_export($reply, true) . "\n");
        }
    }
    return $found;
}

if ($argc !== 2) {
    fwrite(STDERR, "usage: php cluster_clients.php SEED_PORT\n");
    exit(2);
}
$c = connect("127.0.0.1:" . $argv[1]);

$deadline = now() + 60;
echo "set ", write_all($c, "key", $deadline), "\n";
echo "get ", read_all($c, "key", $deadline), "\n";
[$ok] = retry($c, $deadline, "MSET", fn ($c) => $c->mset(["{tag}a" => "1", "{tag}b" => "2"]));
if ($ok) {
    [$ok, $reply] = retry($c, $deadline, "MGET", fn ($c) => $c->mget(["{tag}a", "{tag}b"]));
    echo "tagged ", implode(" ", $reply ?: []), "\n";
}
$c->clearLastError();
try {
    $reply = $c->rawCommand("{a}x", "MGET", "{a}x", "{b}x");
    $error = $c->getLastError();
} catch (RedisClusterException $e) {
    $error = $e->getMessage();
}
echo $error === null ? "crossslot accepted\n" : "crossslot $error\n";

// Replica reads (FAILOVER_DISTRIBUTE: each read goes to the master or a replica at random,
// READONLY first): a backup answers MOVED to its primary (it never serves), which phpredis
// follows. FAILOVER_DISTRIBUTE_SLAVES cannot work: it asks only replicas, and a MOVED to the
// master it already knows changes nothing, so it retries until its timeout.
$replicas = connect("127.0.0.1:" . $argv[1]);
$replicas->setOption(RedisCluster::OPT_SLAVE_FAILOVER, RedisCluster::FAILOVER_DISTRIBUTE);
echo "replica-get ", read_all($replicas, "key", $deadline), "\n";

echo "READY\n";
fflush(STDOUT);
if (fgets(STDIN) === false) {
    fwrite(STDERR, "stdin closed\n");
    exit(1);
}
$deadline = now() + 90;
echo "after-set ", write_all($c, "after", $deadline), "\n";
echo "after-get ", read_all($c, "key", $deadline) + read_all($c, "after", $deadline), "\n";
echo "DONE\n";

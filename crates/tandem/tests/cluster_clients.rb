# redis-rb's cluster client (4.x, `Redis.new(cluster: [...])`) against tandem servers' client
# ports (cluster_clients_more.rs):
#
#   ruby cluster_clients.rb SEED_PORT
#
# The cluster client is built from the one seed node, then the scenario of
# cluster_clients_more.rs runs: SET and GET of keys over every group, MSET/MGET in one hash
# tag, an MGET across slots (redis-rb sends it to its first key's node: the server's
# CROSSSLOT), the keys read through a second client that reads from replicas, then "READY"
# and a wait for a line on stdin (the test kills a primary meanwhile), then more SETs and every
# key read back through the first client. One result line per step on stdout; retries on
# stderr. The Rust test judges the output.
require 'redis'

KEYS = 300
$stdout.sync = true

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

# Runs the block until it returns or the deadline passes; each new error is logged.
# Returns [ok, reply].
def with_retries(deadline, what)
  last = nil
  loop do
    begin
      return [true, yield]
    rescue Redis::BaseError => e
      error = "#{e.class}: #{e.message}"
      if error != last
        last = error
        warn "#{what}: retrying after #{error}"
      end
      if now > deadline
        warn "#{what}: gave up"
        return [false, nil]
      end
      sleep 0.05
    end
  end
end

# Sets PREFIX:i = value:i for every i; returns how many were acknowledged. The slowest SET
# (with its retries) goes to stderr: across a failover, how long the client waited.
def write_all(client, prefix, deadline)
  slowest = 0.0
  acked = (0...KEYS).count do |i|
    start = now
    ok, reply = with_retries(deadline, "SET #{prefix}:#{i}") { client.set("#{prefix}:#{i}", "value:#{i}") }
    slowest = [slowest, now - start].max
    ok && reply == 'OK'
  end
  warn format('slowest SET %s:*: %d ms', prefix, slowest * 1000)
  acked
end

# Counts the keys PREFIX:i whose value reads back as value:i.
def read_all(client, prefix, deadline)
  (0...KEYS).count do |i|
    ok, reply = with_retries(deadline, "GET #{prefix}:#{i}") { client.get("#{prefix}:#{i}") }
    warn "#{prefix}:#{i} reads #{reply.inspect}" unless ok && reply == "value:#{i}"
    ok && reply == "value:#{i}"
  end
end

abort 'usage: ruby cluster_clients.rb SEED_PORT' unless ARGV.size == 1
seed = "redis://127.0.0.1:#{ARGV[0]}"
_, client = with_retries(now + 30, 'connect') do
  Redis.new(cluster: [seed], connect_timeout: 2, read_timeout: 5, write_timeout: 5)
end
abort 'no cluster client' unless client

deadline = now + 60
puts "set #{write_all(client, 'key', deadline)}"
puts "get #{read_all(client, 'key', deadline)}"
ok, = with_retries(deadline, 'MSET') { client.mset('{tag}a', '1', '{tag}b', '2') }
if ok
  _, reply = with_retries(deadline, 'MGET') { client.mget('{tag}a', '{tag}b') }
  puts "tagged #{Array(reply).join(' ')}"
end
begin
  client.mget('{a}x', '{b}x')
  puts 'crossslot accepted'
rescue Redis::CommandError => e
  puts "crossslot #{e.message}"
end

# Replica reads (`replica: true`: READONLY, then reads go to a replica): a backup answers
# MOVED to its primary (it never serves), which redis-rb follows.
_, replicas = with_retries(deadline, 'connect replicas') do
  Redis.new(cluster: [seed], replica: true, connect_timeout: 2, read_timeout: 5, write_timeout: 5)
end
puts "replica-get #{replicas ? read_all(replicas, 'key', deadline) : 0}"

puts 'READY'
abort 'stdin closed' unless $stdin.gets
deadline = now + 90
puts "after-set #{write_all(client, 'after', deadline)}"
puts "after-get #{read_all(client, 'key', deadline) + read_all(client, 'after', deadline)}"
puts 'DONE'

// cxx: a C++-heavy workload; every allocation goes through operator new and
// (mostly sized) operator delete, as in real C++ code.
//
// THREADS threads (default 2) each run ROUNDS rounds of:
//   - std::map<int, std::string>: insert and erase random keys, values of
//     8..64 characters (past the small-string buffer: heap allocated);
//   - std::unordered_map<std::string, int>: count random words, erase half;
//   - std::vector growth: vectors of ints and of strings pushed one by one
//     to random lengths (1..4096), then dropped;
//   - std::shared_ptr across threads: make_shared objects are published
//     into a shared ring, other threads take copies and drop them, so the
//     last release (and the free) often happens on another thread than
//     the allocation.
// Prints time_s (the measured region), ops and a checksum.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
#include <time.h>

static double now_s() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static double bench_scale() {
  const char *e = getenv("BENCH_SCALE");
  double v = e ? atof(e) : 1.0;
  return v > 0 ? v : 1.0;
}

struct Message {
  uint64_t id;
  std::string text;
  std::vector<int> payload;
};

// The shared ring of published objects.
static const size_t RING = 1024;
static std::shared_ptr<Message> ring[RING];
static std::mutex ring_lock;

static std::string random_string(uint64_t *r, size_t lo, size_t hi) {
  size_t n = lo + (size_t)(rng_next(r) % (hi - lo + 1));
  std::string s(n, 'a');
  for (size_t i = 0; i < n; i += 7)
    s[i] = (char)('a' + rng_next(r) % 26);
  return s;
}

static uint64_t run_thread(int id, long rounds) {
  uint64_t r = 0x9E3779B97F4A7C15ULL * (uint64_t)(id + 1) ^ 0xD1B54A32D192ED03ULL;
  uint64_t sum = 0;
  for (long round = 0; round < rounds; round++) {
    // map
    {
      std::map<int, std::string> m;
      for (int i = 0; i < 2000; i++) {
        int k = (int)(rng_next(&r) % 4096);
        if (rng_next(&r) % 3 == 0)
          m.erase(k);
        else
          m[k] = random_string(&r, 8, 64);
      }
      for (auto &kv : m)
        sum += kv.second.size();
    }
    // unordered_map
    {
      std::unordered_map<std::string, int> counts;
      for (int i = 0; i < 2000; i++)
        counts[random_string(&r, 16, 40)]++;
      for (auto it = counts.begin(); it != counts.end();)
        it = (rng_next(&r) & 1) ? counts.erase(it) : std::next(it);
      sum += counts.size();
    }
    // vector growth
    {
      for (int v = 0; v < 8; v++) {
        std::vector<int> ints;
        size_t n = 1 + (size_t)(rng_next(&r) % 4096);
        for (size_t i = 0; i < n; i++)
          ints.push_back((int)i);
        std::vector<std::string> strs;
        size_t m = 1 + (size_t)(rng_next(&r) % 256);
        for (size_t i = 0; i < m; i++)
          strs.push_back(random_string(&r, 4, 48));
        sum += ints.size() + strs.size();
      }
    }
    // shared_ptr across threads: publish some, take copies of others.
    {
      std::vector<std::shared_ptr<Message>> held;
      for (int i = 0; i < 64; i++) {
        auto msg = std::make_shared<Message>();
        msg->id = rng_next(&r);
        msg->text = random_string(&r, 16, 128);
        msg->payload.resize(1 + rng_next(&r) % 64);
        size_t slot = (size_t)(rng_next(&r) % RING);
        std::shared_ptr<Message> old;
        {
          std::lock_guard<std::mutex> g(ring_lock);
          old = std::move(ring[slot]);
          ring[slot] = std::move(msg);
          size_t other = (size_t)(rng_next(&r) % RING);
          if (ring[other])
            held.push_back(ring[other]);
        }
        if (old)
          sum += old->payload.size(); // often the last owner: freed here
      }
      for (auto &h : held)
        sum += h->text.size();
    }
  }
  return sum;
}

// `cxx pairs [N]`: N (default 50M x BENCH_SCALE) operator new / sized
// operator delete pairs of 16..256 bytes with 64 blocks live, one thread:
// the per-call cost of the operators themselves (not in the suite's table;
// for comparing builds, e.g. with and without ptrs's exported operators).
static int pairs(long n) {
  static const size_t sizes[8] = {16, 24, 32, 48, 64, 96, 128, 256};
  void *live[64] = {nullptr};
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    size_t k = (size_t)i & 63, sz = sizes[((size_t)i >> 6) & 7];
    if (live[k] != nullptr)
      ::operator delete(live[k], sizes[(((size_t)i >> 6) - 1) & 7]);
    live[k] = ::operator new(sz);
    *(volatile char *)live[k] = 1;
  }
  double t = now_s() - t0;
  for (size_t k = 0; k < 64; k++)
    ::operator delete(live[k]);
  printf("time_s=%.4f\nops=%ld\nns_per_pair=%.2f\n", t, n, t * 1e9 / (double)n);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && std::string(argv[1]) == "pairs")
    return pairs(argc > 2 ? atol(argv[2]) : (long)(50e6 * bench_scale()));
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  if (threads < 1)
    threads = 1;
  long rounds = (long)(1000 * bench_scale());
  if (rounds < 1)
    rounds = 1;
  std::atomic<uint64_t> total{0};
  double t0 = now_s();
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; i++)
    ts.emplace_back([i, rounds, &total] { total += run_thread(i, rounds); });
  for (auto &t : ts)
    t.join();
  for (auto &p : ring)
    p.reset();
  double t = now_s() - t0;
  printf("time_s=%.4f\nops=%ld\nchecksum=%llu\n", t, rounds * threads,
         (unsigned long long)total.load());
  return 0;
}

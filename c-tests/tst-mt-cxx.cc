// C++ containers across threads: std::thread producers build results with
// std::vector, std::string, std::map, std::unordered_map and new/delete,
// and hand them as std::shared_ptr to consumer threads, which recompute
// their checksums from the data (allocated by another thread) and drop the
// last reference (remote frees); some results stay referenced until the
// main thread drops them. Every checksum must equal the one computed
// single-threaded beforehand.
//
// Usage: tst-mt-cxx [items]
#include "mt_helper.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

/* TIMEOUT: 120 */

struct Result {
  unsigned key;
  std::vector<std::string> words;
  std::map<std::string, int> counts;
  std::unordered_map<uint64_t, std::string> by_hash;
  std::unique_ptr<int[]> squares;
  size_t nsquares = 0;
};

static uint64_t fnv(const std::string &s, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ULL;
  return h;
}

static std::shared_ptr<Result> build(unsigned key) {
  auto r = std::make_shared<Result>();
  r->key = key;
  uint64_t rng = 0x1000ULL + key;
  size_t n = 100 + splitmix64(&rng) % 200;
  for (size_t i = 0; i < n; i++) {
    uint64_t x = splitmix64(&rng);
    std::string w;
    size_t len = 1 + x % 40;
    for (size_t j = 0; j < len; j++)
      w.push_back(static_cast<char>('a' + (x >> (j % 56)) % 6));
    r->words.push_back(w);
  }
  for (auto &w : r->words) {
    r->counts[w]++;
    r->by_hash.emplace(fnv(w), w);
  }
  std::sort(r->words.begin(), r->words.end());
  r->nsquares = 50 + key % 500;
  r->squares.reset(new int[r->nsquares]);
  for (size_t i = 0; i < r->nsquares; i++)
    r->squares[i] = static_cast<int>(i * i);
  return r;
}

static uint64_t digest(const Result &r) {
  uint64_t h = r.key;
  std::string joined;
  for (auto &w : r.words) {
    joined += w;
    joined += ',';
  }
  h = fnv(joined, h);
  for (auto &kv : r.counts)
    h = fnv(kv.first, h) + static_cast<uint64_t>(kv.second);
  // unordered_map iteration order is not deterministic: combine
  // order-independently.
  uint64_t u = 0;
  for (auto &kv : r.by_hash)
    u += kv.first ^ fnv(kv.second);
  h ^= u * 3;
  for (size_t i = 0; i < r.nsquares; i++)
    h = h * 31 + static_cast<uint64_t>(r.squares[i]);
  return h;
}

template <class T> class Queue {
public:
  void push(T v) {
    std::lock_guard<std::mutex> g(m_);
    q_.push_back(std::move(v));
    cv_.notify_one();
  }
  bool pop(T &out) {
    std::unique_lock<std::mutex> g(m_);
    cv_.wait(g, [&] { return !q_.empty() || closed_; });
    if (q_.empty())
      return false;
    out = std::move(q_.front());
    q_.pop_front();
    return true;
  }
  void close() {
    std::lock_guard<std::mutex> g(m_);
    closed_ = true;
    cv_.notify_all();
  }

private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<T> q_;
  bool closed_ = false;
};

int main(int argc, char **argv) {
  require_ptrs();
  unsigned items = static_cast<unsigned>(mt_arg(argc, argv, 1, 3000));
  mt_start_watchdog(110);

  std::vector<uint64_t> expected(items);
  for (unsigned k = 0; k < items; k++)
    expected[k] = digest(*build(k));

  const unsigned producers = 4, consumers = 2;
  Queue<std::shared_ptr<Result>> queue;
  std::mutex kept_mutex;
  std::vector<std::shared_ptr<Result>> kept; // dropped by main at the end
  std::vector<uint64_t> got(items, 0);
  std::mutex got_mutex;

  std::vector<std::thread> prod, cons;
  for (unsigned t = 0; t < producers; t++)
    prod.emplace_back([&, t] {
      for (unsigned k = t; k < items; k += producers) {
        auto r = build(k);
        if (k % 10 == 0) {
          std::lock_guard<std::mutex> g(kept_mutex);
          kept.push_back(r);
        }
        queue.push(std::move(r));
      }
    });
  for (unsigned t = 0; t < consumers; t++)
    cons.emplace_back([&] {
      std::shared_ptr<Result> r;
      while (queue.pop(r)) {
        uint64_t d = digest(*r);
        {
          std::lock_guard<std::mutex> g(got_mutex);
          got[r->key] = d;
        }
        // Mutate the container a little before dropping it.
        r->words.emplace_back(1000, 'x');
        r->counts.clear();
        r.reset();
      }
    });
  for (auto &t : prod)
    t.join();
  queue.close();
  for (auto &t : cons)
    t.join();

  unsigned bad = 0;
  for (unsigned k = 0; k < items; k++)
    if (got[k] != expected[k]) {
      if (bad++ < 10)
        fprintf(stderr, "item %u: checksum %016llx, expected %016llx\n", k,
                static_cast<unsigned long long>(got[k]),
                static_cast<unsigned long long>(expected[k]));
    }
  CHECK(bad == 0);
  for (auto &r : kept)
    CHECK(r->words.back().size() == 1000 && r->counts.empty());
  kept.clear();
  uint64_t total = 0;
  for (uint64_t e : expected)
    total = total * 1000003 + e;
  printf("%u items, combined checksum %016llx\n", items,
         static_cast<unsigned long long>(total));
  // The single-threaded pass must be right too: its value for the default
  // item count is fixed.
  if (items == 3000)
    CHECK(total == 0xdc6f3fd09124ee3bULL);
  return mt_result();
}

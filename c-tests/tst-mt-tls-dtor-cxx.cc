// C++ thread_local destructors that allocate, during thread exit.
//
// Each std::thread touches thread_local objects whose destructors use new,
// delete, std::string, std::vector and std::map. One of them is touched
// before the thread allocates anything itself (its constructor does not
// allocate), the other after, so their destructors run on either side of
// whatever per-thread teardown the allocator registers; a pthread key
// destructor then allocates after all thread_local destructors have run. Other threads are cancelled
// at a cancellation point with live std::vector/std::string locals, which
// forced unwinding destroys. Every destructor must have run with correct
// data, and RSS after all threads may exceed RSS after the first fifty by
// less than 8 MiB.
//
// Usage: tst-mt-tls-dtor-cxx [threads]
#include "mt_helper.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

/* TIMEOUT: 120 */

static constexpr long kMaxGrowthKib = 8L * 1024;

static std::atomic<int> early_dtors{0}, late_dtors{0}, key_dtors{0};
static std::atomic<int> unwound{0};
static pthread_key_t key;

static uint64_t checksum(const std::string &s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ULL;
  return h;
}

// Registered first (no allocation in the constructor); allocates in its
// destructor.
struct Early {
  unsigned id = 0;
  bool used = false;
  ~Early() {
    if (!used)
      return;
    std::map<int, std::string> m;
    for (int i = 0; i < 200; i++)
      m[i * 7 % 200] = std::string(static_cast<size_t>(i % 50 + 1), 'a' + i % 26);
    size_t total = 0;
    for (auto &kv : m)
      total += kv.second.size();
    MT_CHECK(total == 200 / 50 * (50 * 51 / 2)); // 4 * 1275
    auto big = std::make_unique<char[]>(300000);
    big[299999] = 1;
    MT_CHECK(big[299999] == 1);
    early_dtors++;
  }
};

// Registered after the thread's first allocations.
struct Late {
  std::vector<std::string> strings;
  std::unique_ptr<std::vector<uint64_t>> numbers;
  uint64_t expect = 0;
  ~Late() {
    if (!numbers)
      return;
    std::string all;
    for (auto &s : strings)
      all += s;
    MT_CHECK(checksum(all) == expect);
    uint64_t sum = 0;
    for (uint64_t x : *numbers)
      sum += x;
    MT_CHECK(sum == numbers->size() * (numbers->size() - 1) / 2);
    std::vector<std::string> more(100, std::string(100, 'z'));
    MT_CHECK(more[99].size() == 100);
    late_dtors++;
  }
};

static thread_local Early early;
static thread_local Late late;

static void key_dtor(void *arg) {
  auto *s = static_cast<std::string *>(arg);
  MT_CHECK(s->size() == 1000 && (*s)[999] == 'k');
  delete s;
  std::vector<std::string> v;
  for (int i = 0; i < 64; i++)
    v.emplace_back(static_cast<size_t>(i * 17), 'q');
  MT_CHECK(v[63].size() == 63 * 17);
  key_dtors++;
}

static void thread_body(unsigned id) {
  early.id = id; // registers Early's destructor before our allocations
  early.used = true;
  std::string all;
  for (unsigned i = 0; i < 40; i++) {
    late.strings.push_back(std::to_string(id * 1000 + i) + std::string(i, 'x'));
    all += late.strings.back();
  }
  late.expect = checksum(all);
  late.numbers = std::make_unique<std::vector<uint64_t>>();
  for (uint64_t i = 0; i < 5000; i++)
    late.numbers->push_back(i);
  pthread_setspecific(key, new std::string(1000, 'k'));
}

static void *cancelled(void *arg) {
  unsigned id = static_cast<unsigned>(reinterpret_cast<uintptr_t>(arg));
  thread_body(id);
  struct Guard {
    std::vector<std::string> held;
    ~Guard() {
      MT_CHECK(held.size() == 50);
      std::string s;
      for (auto &h : held)
        s += h;
      MT_CHECK(s.size() == 50 * 300);
      unwound++;
    }
  } guard;
  for (int i = 0; i < 50; i++)
    guard.held.emplace_back(300, 'h');
  for (;;)
    pause(); // cancellation point: forced unwinding runs ~Guard
  return nullptr;
}

int main(int argc, char **argv) {
  require_ptrs();
  long n = mt_arg(argc, argv, 1, 300);
  if (n < 100)
    n = 100;
  mt_start_watchdog(110);
  if (pthread_key_create(&key, key_dtor) != 0)
    FAIL_EXIT("pthread_key_create failed");

  const int batch = 4;
  long rss_early = -1;
  long done = 0;
  for (; done < n; done += batch) {
    std::vector<std::thread> ts;
    pthread_t c[batch];
    for (int i = 0; i < batch; i++) {
      ts.emplace_back(thread_body, static_cast<unsigned>(done + i));
      c[i] = mt_thread_create(cancelled,
                              reinterpret_cast<void *>(done + i + 100000));
    }
    for (int i = 0; i < batch; i++)
      pthread_cancel(c[i]);
    for (auto &t : ts)
      t.join();
    for (int i = 0; i < batch; i++)
      CHECK(mt_thread_join(c[i]) == PTHREAD_CANCELED);
    if (done + batch >= 50 && rss_early < 0)
      rss_early = mt_rss_kib();
  }
  long rss_late = mt_rss_kib();
  printf("RSS after 50 threads: %ld KiB, after %ld: %ld KiB\n", rss_early,
         done * 2, rss_late);
  CHECK(early_dtors == done * 2);
  CHECK(late_dtors == done * 2);
  CHECK(key_dtors == done * 2);
  CHECK(unwound == done);
  if (early_dtors != done * 2 || late_dtors != done * 2 ||
      key_dtors != done * 2 || unwound != done)
    fprintf(stderr, "early %d late %d key %d unwound %d, threads %ld\n",
            early_dtors.load(), late_dtors.load(), key_dtors.load(),
            unwound.load(), done * 2);
  CHECK(rss_early > 0 && rss_late > 0);
  CHECK(rss_late - rss_early < kMaxGrowthKib);
  return mt_result();
}

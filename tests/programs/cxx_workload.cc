// Deterministic C++ workload for scripts/test-programs.sh: std::thread
// workers build text, count words in std::map/std::unordered_map, pass
// results as std::shared_ptr through a queue to a merging thread, and the
// main thread prints a summary. The same stdout under any correct
// allocator; stderr says whether libptrs is mapped.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

uint64_t next(uint64_t &x) {
  x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x >> 33;
}

std::string make_word(uint64_t &rng) {
  static const char *syll[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi"};
  std::string w;
  int n = 1 + static_cast<int>(next(rng) % 4);
  for (int i = 0; i < n; i++)
    w += syll[next(rng) % 8];
  return w;
}

struct Chunk {
  int id;
  std::unordered_map<std::string, int> counts;
  std::vector<std::string> longest;
  std::list<std::unique_ptr<std::string>> lines;
};

class Queue {
public:
  void push(std::shared_ptr<Chunk> c) {
    std::lock_guard<std::mutex> g(m_);
    q_.push_back(std::move(c));
    cv_.notify_one();
  }
  std::shared_ptr<Chunk> pop() {
    std::unique_lock<std::mutex> g(m_);
    cv_.wait(g, [&] { return !q_.empty(); });
    auto c = std::move(q_.front());
    q_.pop_front();
    return c;
  }

private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Chunk>> q_;
};

std::shared_ptr<Chunk> produce(int id) {
  auto c = std::make_shared<Chunk>();
  c->id = id;
  uint64_t rng = 1000 + static_cast<uint64_t>(id);
  for (int l = 0; l < 300; l++) {
    std::ostringstream line;
    int words = 5 + static_cast<int>(next(rng) % 20);
    for (int w = 0; w < words; w++) {
      std::string word = make_word(rng);
      c->counts[word]++;
      line << word << ' ';
    }
    c->lines.push_back(std::make_unique<std::string>(line.str()));
  }
  std::set<std::string> uniq;
  for (auto &kv : c->counts)
    uniq.insert(kv.first);
  std::vector<std::string> v(uniq.begin(), uniq.end());
  std::stable_sort(v.begin(), v.end(), [](const std::string &a, const std::string &b) {
    return a.size() > b.size();
  });
  v.resize(std::min<size_t>(v.size(), 5));
  c->longest = v;
  return c;
}

}  // namespace

int main() {
  {
    std::ifstream maps("/proc/self/maps");
    std::string all((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
    std::cerr << "libptrs mapped: " << (all.find("libptrs") != std::string::npos ? "yes" : "no")
              << "\n";
  }
  const int chunks = 400, workers = 4;
  Queue q;
  std::map<std::string, long> total;
  std::map<int, size_t> line_bytes;
  std::thread merger([&] {
    for (int i = 0; i < chunks; i++) {
      auto c = q.pop();
      for (auto &kv : c->counts)
        total[kv.first] += kv.second;
      size_t bytes = 0;
      for (auto &l : c->lines)
        bytes += l->size();
      line_bytes[c->id] = bytes;
    }
  });
  std::vector<std::thread> ts;
  for (int w = 0; w < workers; w++)
    ts.emplace_back([&q, w] {
      for (int id = w; id < chunks; id += workers)
        q.push(produce(id));
    });
  for (auto &t : ts)
    t.join();
  merger.join();

  std::vector<std::pair<long, std::string>> byfreq;
  for (auto &kv : total)
    byfreq.emplace_back(-kv.second, kv.first);
  std::sort(byfreq.begin(), byfreq.end());
  std::cout << "distinct words: " << total.size() << "\n";
  for (size_t i = 0; i < 15 && i < byfreq.size(); i++)
    std::cout << byfreq[i].second << " " << -byfreq[i].first << "\n";
  uint64_t h = 1469598103934665603ULL;
  for (auto &kv : line_bytes)
    h = (h ^ (kv.second + static_cast<uint64_t>(kv.first))) * 1099511628211ULL;
  std::cout << "line bytes hash: " << std::hex << h << std::dec << "\n";
  auto last = produce(7);
  for (auto &w : last->longest)
    std::cout << "longest: " << w << "\n";
  return 0;
}

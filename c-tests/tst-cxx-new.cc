// C++ operator new/delete (libstdc++ forwards them to malloc/free),
// containers, strings and exceptions get their memory from ptrs.
#include "test_helper.h"
#include <malloc.h>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

struct alignas(256) Overaligned {
  char data[300];
};

int main() {
  require_ptrs();
  int *i = new int(42);
  CHECK(test_owns(i));
  delete i;
  char *arr = new char[100000];
  CHECK(test_owns(arr));
  delete[] arr;

  Overaligned *o = new Overaligned();
  CHECK(is_aligned(o, 256));
  CHECK(test_owns(o));
  delete o;
  Overaligned *oa = new Overaligned[10];
  CHECK(is_aligned(oa, 256));
  delete[] oa;

  std::vector<std::string> v;
  for (int k = 0; k < 10000; k++)
    v.push_back(std::string(static_cast<size_t>(k % 100 + 20), 'x') +
                std::to_string(k));
  CHECK(test_owns(v.data()));
  CHECK(test_owns(v[5000].data()));
  CHECK(v[9999].size() == 99 + 20 + 4);

  std::map<int, std::unique_ptr<std::vector<int>>> m;
  for (int k = 0; k < 1000; k++)
    m[k] = std::make_unique<std::vector<int>>(static_cast<size_t>(k), k);
  CHECK(m[999]->size() == 999);
  m.clear();

  bool caught = false;
  try {
    throw std::runtime_error(std::string(1000, 'e'));
  } catch (const std::exception &e) {
    caught = std::string(e.what()).size() == 1000;
  }
  CHECK(caught);

  // new of an impossible size throws std::bad_alloc; nothrow gives null.
  bool bad_alloc = false;
  try {
    volatile size_t huge = SIZE_MAX / 2;
    char *p = new char[huge];
    delete[] p;
  } catch (const std::bad_alloc &) {
    bad_alloc = true;
  }
  CHECK(bad_alloc);
  volatile size_t huge2 = SIZE_MAX / 4;
  char *np = new (std::nothrow) char[huge2];
  CHECK(np == nullptr);
  return test_result();
}

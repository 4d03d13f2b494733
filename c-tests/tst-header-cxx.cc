// include/ptrs.h compiles as C++ next to <cstdlib> and <malloc.h> with
// -Wall -Wextra -Werror, declares its functions with C linkage and the
// documented types.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <dlfcn.h>
#include <malloc.h>
#include <type_traits>
#include "ptrs.h"
#include "ptrs.h"

static_assert(std::is_same<decltype(ptrs_owns), int(const void *)>::value,
              "ptrs_owns is int (const void *)");
static_assert(std::is_same<decltype(ptrs_version), const char *()>::value,
              "ptrs_version is const char * ()");

int main() {
  // C linkage: the unmangled names are what the library exports.
  auto owns = reinterpret_cast<decltype(&ptrs_owns)>(
      dlsym(RTLD_DEFAULT, "ptrs_owns"));
  auto version = reinterpret_cast<decltype(&ptrs_version)>(
      dlsym(RTLD_DEFAULT, "ptrs_version"));
  if (owns == nullptr || version == nullptr) {
    std::fprintf(stderr, "ptrs is not loaded\n");
    return 1;
  }
  int failures = 0;
  void *p = std::malloc(100);
  if (owns(p) != 1) {
    std::fprintf(stderr, "ptrs_owns(malloc(100)) != 1\n");
    failures++;
  }
  std::free(p);
  if (version() == nullptr || std::strlen(version()) == 0) {
    std::fprintf(stderr, "ptrs_version() is empty\n");
    failures++;
  }
  return failures ? 1 : 0;
}

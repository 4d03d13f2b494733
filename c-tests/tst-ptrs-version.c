/* ptrs_version() returns a static "MAJOR.MINOR.PATCH" string, the same
 * pointer on every call. */
#include "test_helper.h"
#include <ctype.h>

int main(void) {
  require_ptrs();
  const char *(*version)(void) =
      (const char *(*)(void))ptrs_symbol("ptrs_version");
  CHECK(version != NULL);
  if (version == NULL)
    return test_result();
  const char *v = version();
  CHECK(v != NULL);
  if (v == NULL)
    return test_result();
  fprintf(stderr, "ptrs_version() = \"%s\"\n", v);
  CHECK(version() == v);
  CHECK(test_owns(v) == 0); /* static, not a heap block */
  /* MAJOR.MINOR.PATCH, optionally followed by a pre-release/build tag. */
  const char *s = v;
  int parts = 0;
  for (;;) {
    if (!isdigit((unsigned char)*s))
      break;
    while (isdigit((unsigned char)*s))
      s++;
    parts++;
    if (*s != '.' || parts == 3)
      break;
    s++;
  }
  CHECK(parts == 3);
  CHECK(*s == '\0' || *s == '-' || *s == '+');
  CHECK(strlen(v) < 64);
  return test_result();
}

/* ptrs: stand-in for glibc's internal <scratch_buffer.h>: a buffer that
   starts on the stack and moves to the heap when grown.  glibc implements
   the growing functions inside libc (GLIBC_PRIVATE); this version is our
   own, on plain malloc/free, so the test-support library that uses it
   (capture of subprocess output) needs nothing private from libc.  */
#ifndef PTRS_GLIBC_SHIM_SCRATCH_BUFFER_H
#define PTRS_GLIBC_SHIM_SCRATCH_BUFFER_H 1

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct scratch_buffer
{
  void *data;
  size_t length;
  union { max_align_t __align; char __c[1024]; } __space;
};

static inline void
scratch_buffer_init (struct scratch_buffer *buffer)
{
  buffer->data = buffer->__space.__c;
  buffer->length = sizeof (buffer->__space);
}

static inline void
scratch_buffer_free (struct scratch_buffer *buffer)
{
  if (buffer->data != buffer->__space.__c)
    free (buffer->data);
}

/* Double the size (contents need not be kept); false and a reset buffer
   on failure.  */
static inline bool
scratch_buffer_grow (struct scratch_buffer *buffer)
{
  size_t new_length = 2 * buffer->length;
  scratch_buffer_free (buffer);
  void *p = new_length < buffer->length ? NULL : malloc (new_length);
  if (p == NULL)
    {
      scratch_buffer_init (buffer);
      if (new_length < buffer->length)
        errno = ENOMEM;
      return false;
    }
  buffer->data = p;
  buffer->length = new_length;
  return true;
}

/* Double the size, keeping the contents.  */
static inline bool
scratch_buffer_grow_preserve (struct scratch_buffer *buffer)
{
  size_t new_length = 2 * buffer->length;
  void *p;
  if (new_length < buffer->length)
    {
      errno = ENOMEM;
      p = NULL;
    }
  else if (buffer->data == buffer->__space.__c)
    {
      p = malloc (new_length);
      if (p != NULL)
        memcpy (p, buffer->data, buffer->length);
    }
  else
    p = realloc (buffer->data, new_length);
  if (p == NULL)
    {
      scratch_buffer_free (buffer);
      scratch_buffer_init (buffer);
      return false;
    }
  buffer->data = p;
  buffer->length = new_length;
  return true;
}

#endif

/* ptrs: randomized differential test of the malloc API.
 *
 * Several worker threads each run a long random sequence of malloc, calloc,
 * realloc, reallocarray, free, free_sized, free_aligned_sized,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size and (now and then) malloc_trim calls, and check every
 * result against a model of what the allocator promised:
 *
 *   - alignment: 16 bytes for everything, the requested alignment for the
 *     aligned functions, the page for valloc/pvalloc;
 *   - usable size: malloc_usable_size >= the request (a whole number of
 *     pages for pvalloc), and the same value until the block is freed;
 *   - no overlap: the usable ranges of a worker's live blocks are kept in a
 *     treap, and a new block must not overlap any of them;
 *   - contents: every block's usable bytes are filled with a pattern derived
 *     from a tag naming the worker and the block (all bytes up to 4 KiB,
 *     then the first and last KiB and one word every 16 KiB), checked
 *     before every free and realloc, at random, and over all blocks of a
 *     worker every 64K operations, so that a block handed out twice, or
 *     overlapping another thread's block, shows up as a broken pattern;
 *   - realloc keeps min(old, new) requested bytes; calloc's bytes are zero;
 *   - error paths: sizes that cannot be served give NULL and ENOMEM and
 *     leave the old block alone; bad alignments give EINVAL.
 *
 * Blocks also move between threads through a shared hand-off array, so
 * some are freed or realloc'd by a thread other than the one that
 * allocated them, and workers end their thread every few hundred thousand
 * operations and go on in a fresh one (thread exit with live blocks).
 *
 * Sizes are skewed small (mostly <= 256 bytes) but reach 8 MiB, with edge
 * sizes (0, 1, 15, 16, 17, page sizes, powers of two +-1, the size-class
 * and large/huge boundaries); alignments go from 8 bytes to 4 MiB.
 *
 * Each worker's operations come from its own generator seeded from the
 * seed and its index, so a seed replays the same operations (the moments
 * at which blocks cross threads depend on scheduling).  The program
 * prints the seed, the operation count and the rate; any mismatch prints
 * what was expected and found and exits 1 at once.
 *
 * usage: fuzz [-s SECONDS] [-S SEED] [-t THREADS] [-n OPS]
 *   (defaults: $FUZZ_SECONDS or 90, $FUZZ_SEED or 1, $FUZZ_THREADS or 4;
 *    -n stops each worker after OPS operations, whatever the time.)
 *
 * It runs the same without LD_PRELOAD (against glibc), which checks the
 * model itself.  Written for ptrs.  */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* C23 sized deallocation: in ptrs, not in glibc 2.36.  Weak, so that the
   program also runs against glibc (where they are null and plain free is
   used).  */
extern void free_sized (void *p, size_t size) __attribute__ ((weak));
extern void free_aligned_sized (void *p, size_t align, size_t size)
  __attribute__ ((weak));

enum { NSLOTS = 1024, NHANDOFF = 64, MAX_WORKERS = 64 };
#define LIVE_CAP ((size_t) 48 << 20)  /* per worker, requested + alignment */
#define FULL 4096                     /* blocks up to this are checked whole */
#define EDGE 1024                     /* else the first and last EDGE bytes */
#define STRIDE 16384                  /* and one word per STRIDE between */
#define ZERO_FULL (256 * 1024)        /* calloc: all bytes checked up to this */

enum kind
{
  K_MALLOC, K_CALLOC, K_REALLOC, K_REALLOCARRAY, K_POSIX_MEMALIGN,
  K_ALIGNED_ALLOC, K_MEMALIGN, K_VALLOC, K_PVALLOC, K_NKINDS
};
static const char *const kind_name[K_NKINDS] = {
  "malloc", "calloc", "realloc", "reallocarray", "posix_memalign",
  "aligned_alloc", "memalign", "valloc", "pvalloc"
};

typedef struct
{
  unsigned char *p;   /* NULL: empty slot */
  size_t req;         /* requested size: bytes the caller may rely on */
  size_t usable;      /* malloc_usable_size when allocated */
  size_t align;       /* alignment requested (aligned_alloc: for
                         free_aligned_sized) */
  uint64_t tag;       /* pattern of the contents */
  int kind;           /* function that made it */
} block;

typedef struct
{
  uintptr_t s, e;     /* usable range [s, e) */
  int32_t l, r;
  uint32_t pri;
} tnode;

typedef struct
{
  int id;
  int generation;
  uint64_t rng;
  uint64_t ops;           /* all generations */
  uint64_t max_ops;       /* 0: unlimited */
  uint64_t next_tag;
  size_t live_bytes;
  int live;
  int32_t root;
  block slots[NSLOTS];
  tnode nodes[NSLOTS];
  uint64_t count[K_NKINDS];
  uint64_t frees, reallocs, handoffs_in, handoffs_out, trims, checks, probes;
  _Atomic int done;       /* this generation's thread has finished */
  pthread_t thread;
  int op_kind;            /* for failure messages */
} worker;

typedef struct
{
  atomic_flag lock;
  block b;
} handoff_slot;

static handoff_slot handoff[NHANDOFF];
static _Atomic int stop;
static uint64_t seed = 1;
static size_t page_size;
static size_t edge_sizes[128];
static int n_edge_sizes;

/* --- failure reporting ------------------------------------------------- */

static void __attribute__ ((noreturn, format (printf, 2, 3)))
fail (worker *w, const char *fmt, ...)
{
  char buf[1024];
  int n = snprintf (buf, sizeof buf, "fuzz: FAILURE (seed %" PRIu64
                    ", worker %d, generation %d, op %" PRIu64 ", %s): ",
                    seed, w ? w->id : -1, w ? w->generation : 0,
                    w ? w->ops : 0, w ? w->op_kind >= 0
                    ? kind_name[w->op_kind] : "free/check" : "final");
  va_list ap;
  va_start (ap, fmt);
  if (n > 0 && (size_t) n < sizeof buf)
    n += vsnprintf (buf + n, sizeof buf - n, fmt, ap);
  va_end (ap);
  if (n < 0 || (size_t) n >= sizeof buf - 1)
    n = sizeof buf - 2;
  buf[n++] = '\n';
  fflush (stdout);
  (void) !write (2, buf, n);
  _exit (1);
}

/* --- random numbers ---------------------------------------------------- */

static inline uint64_t
splitmix (uint64_t *s)
{
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static inline uint64_t
rnd (worker *w, uint64_t n)   /* 0 <= result < n */
{
  return n ? splitmix (&w->rng) % n : 0;
}

static size_t
gen_size (worker *w)
{
  uint64_t r = rnd (w, 1000);
  if (r < 60)
    return edge_sizes[rnd (w, n_edge_sizes)];
  if (r < 600)
    return rnd (w, 257);
  if (r < 820)
    return 257 + rnd (w, 4096 - 256);
  if (r < 930)
    return 4097 + rnd (w, 65536 - 4096);
  if (r < 985)
    return 65537 + rnd (w, (size_t) 1 << 20);
  return ((size_t) 1 << 20) + rnd (w, (size_t) 7 << 20);
}

static size_t
gen_align (worker *w)
{
  uint64_t r = rnd (w, 100);
  int k;
  if (r < 75)
    k = 3 + (int) rnd (w, 10);        /* 8 .. 4096 */
  else if (r < 96)
    k = 13 + (int) rnd (w, 6);        /* 8 KiB .. 256 KiB */
  else
    k = 19 + (int) rnd (w, 4);        /* 512 KiB .. 4 MiB */
  return (size_t) 1 << k;
}

static void
init_edge_sizes (void)
{
  static const size_t fixed[] = {
    0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 112, 127, 128, 129, 144,
    4095, 4096, 4097, 8191, 8192, 8193, 12287, 12288, 12289, 65535, 65536,
    65537, 131072 + 4096, ((size_t) 2 << 20) - 16, ((size_t) 2 << 20) + 16,
    ((size_t) 4 << 20) - 4096, ((size_t) 4 << 20) - 65536,
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    edge_sizes[n_edge_sizes++] = fixed[i];
  for (int k = 5; k <= 23; k++)
    {
      size_t p = (size_t) 1 << k;
      edge_sizes[n_edge_sizes++] = p - 1;
      edge_sizes[n_edge_sizes++] = p;
      edge_sizes[n_edge_sizes++] = p + 1;
    }
}

/* --- contents ---------------------------------------------------------- */

static inline uint64_t
pword (uint64_t tag, size_t off)   /* the pattern word at offset off & ~7 */
{
  uint64_t v = (tag ^ ((uint64_t) off * 0xD6E8FEB86659FD93ULL))
               * 0x9E3779B97F4A7C15ULL;
  return v ^ (v >> 31);
}

enum scan_mode { FILL, CHECK, ZERO };

/* Fills or checks [a, b) of P; returns the first bad offset or SIZE_MAX.  */
static size_t
scan_range (unsigned char *p, size_t a, size_t b, uint64_t tag,
            enum scan_mode mode)
{
  size_t o = a;
  for (; o < b && (o & 7); o++)
    {
      unsigned char want = mode == ZERO ? 0 : pword (tag, o & ~7) >> 8 * (o & 7);
      if (mode == FILL)
        p[o] = want;
      else if (p[o] != want)
        return o;
    }
  for (; o + 8 <= b; o += 8)
    {
      uint64_t want = mode == ZERO ? 0 : pword (tag, o), have;
      if (mode == FILL)
        memcpy (p + o, &want, 8);
      else
        {
          memcpy (&have, p + o, 8);
          if (have != want)
            {
              while (p[o] == (unsigned char) want)
                {
                  o++;
                  want >>= 8;
                }
              return o;
            }
        }
    }
  for (; o < b; o++)
    {
      unsigned char want = mode == ZERO ? 0 : pword (tag, o & ~7) >> 8 * (o & 7);
      if (mode == FILL)
        p[o] = want;
      else if (p[o] != want)
        return o;
    }
  return SIZE_MAX;
}

/* The sampled positions of a block of LEN bytes, those below LIMIT.  */
static size_t
scan (unsigned char *p, size_t len, size_t limit, uint64_t tag,
      enum scan_mode mode)
{
  if (limit > len)
    limit = len;
  if (len <= FULL || (mode == ZERO && len <= ZERO_FULL))
    return scan_range (p, 0, limit, tag, mode);
  size_t bad = scan_range (p, 0, limit < EDGE ? limit : EDGE, tag, mode);
  if (bad != SIZE_MAX)
    return bad;
  for (size_t o = STRIDE / 2; o + 8 <= len - EDGE && o + 8 <= limit; o += STRIDE)
    if ((bad = scan_range (p, o, o + 8, tag, mode)) != SIZE_MAX)
      return bad;
  if (limit > len - EDGE)
    return scan_range (p, len - EDGE, limit, tag, mode);
  return SIZE_MAX;
}

static void
check_block (worker *w, const block *b, size_t limit, const char *when)
{
  size_t bad = scan (b->p, b->usable, limit, b->tag, CHECK);
  if (bad != SIZE_MAX)
    {
      uint64_t want = pword (b->tag, bad & ~7) >> 8 * (bad & 7);
      fail (w, "%s: contents of block %p (%s, size %zu, usable %zu, tag "
            "%#" PRIx64 ") changed at offset %zu: byte %#x, expected %#x",
            when, (void *) b->p, kind_name[b->kind], b->req, b->usable,
            b->tag, bad, b->p[bad], (unsigned) (want & 0xff));
    }
}

static void
check_usable (worker *w, const block *b, const char *when)
{
  size_t u = malloc_usable_size (b->p);
  if (u != b->usable)
    fail (w, "%s: malloc_usable_size (%p) = %zu, was %zu when allocated "
          "(%s, size %zu)", when, (void *) b->p, u, b->usable,
          kind_name[b->kind], b->req);
}

/* --- the treap of a worker's live ranges -------------------------------- */

#define NIL (-1)

static int32_t
t_insert (tnode *n, int32_t root, int32_t x)
{
  if (root == NIL)
    return x;
  if (n[x].s < n[root].s)
    {
      n[root].l = t_insert (n, n[root].l, x);
      if (n[n[root].l].pri > n[root].pri)
        {
          int32_t l = n[root].l;
          n[root].l = n[l].r;
          n[l].r = root;
          return l;
        }
    }
  else
    {
      n[root].r = t_insert (n, n[root].r, x);
      if (n[n[root].r].pri > n[root].pri)
        {
          int32_t r = n[root].r;
          n[root].r = n[r].l;
          n[r].l = root;
          return r;
        }
    }
  return root;
}

static int32_t
t_merge (tnode *n, int32_t a, int32_t b)   /* keys of a < keys of b */
{
  if (a == NIL)
    return b;
  if (b == NIL)
    return a;
  if (n[a].pri > n[b].pri)
    {
      n[a].r = t_merge (n, n[a].r, b);
      return a;
    }
  n[b].l = t_merge (n, a, n[b].l);
  return b;
}

static int32_t
t_delete (tnode *n, int32_t root, int32_t x)
{
  if (root == NIL)
    return NIL;
  if (root == x)
    return t_merge (n, n[x].l, n[x].r);
  if (n[x].s < n[root].s)
    n[root].l = t_delete (n, n[root].l, x);
  else
    n[root].r = t_delete (n, n[root].r, x);
  return root;
}

/* The live range overlapping [s, e), or NIL.  The ranges in the tree do
   not overlap, so only the last range starting at or before s and the
   first starting after it can.  */
static int32_t
t_overlap (tnode *n, int32_t root, uintptr_t s, uintptr_t e)
{
  int32_t pred = NIL, succ = NIL;
  for (int32_t x = root; x != NIL;)
    if (n[x].s <= s)
      {
        pred = x;
        x = n[x].r;
      }
    else
      {
        succ = x;
        x = n[x].l;
      }
  if (pred != NIL && n[pred].e > s)
    return pred;
  if (succ != NIL && n[succ].s < e)
    return succ;
  return NIL;
}

/* --- the model --------------------------------------------------------- */

static void
model_add (worker *w, int slot, const block *b, const char *when)
{
  tnode *t = &w->nodes[slot];
  t->s = (uintptr_t) b->p;
  t->e = t->s + (b->usable ? b->usable : 1);
  t->l = t->r = NIL;
  t->pri = (uint32_t) splitmix (&w->rng);
  int32_t o = t_overlap (w->nodes, w->root, t->s, t->e);
  if (o != NIL)
    {
      const block *ob = &w->slots[o];
      fail (w, "%s: new block [%p, %p) (%s, size %zu) overlaps live block "
            "[%p, %p) (%s, size %zu, usable %zu)", when, (void *) t->s,
            (void *) t->e, kind_name[b->kind], b->req, (void *) ob->p,
            (void *) (ob->p + ob->usable), kind_name[ob->kind], ob->req,
            ob->usable);
    }
  w->root = t_insert (w->nodes, w->root, slot);
  w->slots[slot] = *b;
  w->live++;
  w->live_bytes += b->req + b->align;
}

static void
model_remove (worker *w, int slot)
{
  block *b = &w->slots[slot];
  w->root = t_delete (w->nodes, w->root, slot);
  w->live--;
  w->live_bytes -= b->req + b->align;
  b->p = NULL;
}

/* A fresh block from an allocation function: check it and fill it.  */
static void
accept_block (worker *w, int slot, block *b, size_t need_align,
              size_t min_usable, bool zeroed, const char *when)
{
  if (need_align < 16)
    need_align = 16;
  if ((uintptr_t) b->p % need_align)
    fail (w, "%s: %p (size %zu) is not aligned to %zu", when, (void *) b->p,
          b->req, need_align);
  b->usable = malloc_usable_size (b->p);
  if (b->usable < min_usable)
    fail (w, "%s: malloc_usable_size (%p) = %zu < %zu (size %zu)", when,
          (void *) b->p, b->usable, min_usable, b->req);
  if (zeroed)
    {
      size_t bad = scan (b->p, b->req, b->req, 0, ZERO);
      if (bad != SIZE_MAX)
        fail (w, "%s: calloc'd block %p (size %zu) has byte %#x at offset %zu",
              when, (void *) b->p, b->req, b->p[bad], bad);
    }
  b->tag = ((uint64_t) (w->id + 1) << 48) | ++w->next_tag;
  model_add (w, slot, b, when);
  scan (b->p, b->usable, b->usable, b->tag, FILL);
}

static void
free_block (worker *w, block *b)
{
  w->frees++;
  uint64_t r = rnd (w, 4);
  if (r == 0 && free_sized
      && (b->kind == K_MALLOC || b->kind == K_CALLOC || b->kind == K_REALLOC
          || b->kind == K_REALLOCARRAY))
    free_sized (b->p, b->req);
  else if (r == 1 && free_aligned_sized && b->kind == K_ALIGNED_ALLOC)
    free_aligned_sized (b->p, b->align, b->req);
  else
    free (b->p);
}

static void
do_alloc (worker *w, int slot)
{
  block b = { 0 };
  size_t size = gen_size (w), align = 16, min_usable = size;
  bool zeroed = false;
  uint64_t r = rnd (w, 100);
  int kind = r < 34 ? K_MALLOC : r < 46 ? K_CALLOC : r < 52 ? K_REALLOC
             : r < 55 ? K_REALLOCARRAY : r < 66 ? K_POSIX_MEMALIGN
             : r < 77 ? K_ALIGNED_ALLOC : r < 89 ? K_MEMALIGN
             : r < 95 ? K_VALLOC : K_PVALLOC;
  w->op_kind = kind;
  errno = 0;
  switch (kind)
    {
    case K_MALLOC:
      b.p = malloc (size);
      break;
    case K_CALLOC:
      {
        size_t n = 1 + rnd (w, 8), each = size / n;
        size = n * each;
        min_usable = size;
        b.p = calloc (n, each);
        zeroed = true;
      }
      break;
    case K_REALLOC:
      b.p = realloc (NULL, size);
      break;
    case K_REALLOCARRAY:
      {
        size_t n = 1 + rnd (w, 4), each = size / n;
        size = n * each;
        min_usable = size;
        b.p = reallocarray (NULL, n, each);
      }
      break;
    case K_POSIX_MEMALIGN:
      {
        void *p = (void *) 1;
        align = gen_align (w);
        int rc = posix_memalign (&p, align, size);
        if (rc != 0)
          fail (w, "posix_memalign (%zu, %zu) failed: %s", align, size,
                strerror (rc));
        b.p = p;
      }
      break;
    case K_ALIGNED_ALLOC:
      align = gen_align (w);
      b.p = aligned_alloc (align, size);
      break;
    case K_MEMALIGN:
      align = gen_align (w);
      if (rnd (w, 8) == 0)
        {
          /* Not a power of two: rounded up to the next one (glibc).  */
          size_t odd = align + 1 + rnd (w, align - 1);
          b.p = memalign (odd, size);
          align *= 2;
        }
      else
        b.p = memalign (align, size);
      break;
    case K_VALLOC:
      align = page_size;
      b.p = valloc (size);
      break;
    case K_PVALLOC:
      align = page_size;
      /* Whole pages; but pvalloc (0) is one page in ptrs and a minimal
         block in glibc 2.36 (which masks with -(pagesize - 1)).  */
      min_usable = (size + page_size - 1) & ~(page_size - 1);
      b.p = pvalloc (size);
      break;
    }
  if (b.p == NULL)
    fail (w, "allocation of %zu bytes (alignment %zu) returned NULL: %s",
          size, align, strerror (errno));
  b.req = size;
  b.align = align;
  b.kind = kind;
  w->count[kind]++;
  accept_block (w, slot, &b, align, min_usable, zeroed, kind_name[kind]);
}

static void
do_free (worker *w, int slot)
{
  block *b = &w->slots[slot];
  w->op_kind = -1;
  check_usable (w, b, "before free");
  check_block (w, b, b->usable, "before free");
  block copy = *b;
  model_remove (w, slot);
  free_block (w, &copy);
}

static void
do_realloc (worker *w, int slot)
{
  block old = w->slots[slot];
  size_t size = rnd (w, 50) == 0 ? 0 : gen_size (w);
  bool array = rnd (w, 4) == 0;
  size_t n = 1, each = size;
  if (array && size)
    {
      n = 1 + rnd (w, 4);
      each = size / n;
      size = n * each;
    }
  w->op_kind = array ? K_REALLOCARRAY : K_REALLOC;
  check_usable (w, &old, "before realloc");
  check_block (w, &old, old.usable, "before realloc");
  model_remove (w, slot);
  w->reallocs++;
  errno = 0;
  unsigned char *p = array ? reallocarray (old.p, n, each)
                           : realloc (old.p, size);
  if (size == 0)
    {
      /* glibc: realloc (p, 0) frees p and returns NULL.  */
      if (p != NULL)
        fail (w, "realloc (%p, 0) returned %p, not NULL", (void *) old.p,
              (void *) p);
      return;
    }
  if (p == NULL)
    fail (w, "realloc (%p, %zu) (from %zu) returned NULL: %s",
          (void *) old.p, size, old.req, strerror (errno));
  block b = old;
  b.p = p;
  size_t keep = old.req < size ? old.req : size;
  size_t bad = scan (p, old.usable, keep, old.tag, CHECK);
  if (bad != SIZE_MAX)
    fail (w, "realloc (%p, %zu) = %p (from size %zu, %s) lost the contents "
          "at offset %zu (keeps %zu bytes): byte %#x, expected %#x",
          (void *) old.p, size, (void *) p, old.req, kind_name[old.kind], bad,
          keep, p[bad],
          (unsigned) (pword (old.tag, bad & ~7) >> 8 * (bad & 7) & 0xff));
  b.req = size;
  b.align = 16;
  b.kind = array ? K_REALLOCARRAY : K_REALLOC;
  w->count[b.kind]++;
  accept_block (w, slot, &b, 16, size, false, "realloc");
}

/* Failure paths: none may disturb the heap or a live block.  The sizes
   are impossible on purpose.  */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
static void
do_probe (worker *w, int slot)
{
  w->probes++;
  w->op_kind = K_MALLOC;
  size_t huge = SIZE_MAX - rnd (w, 1 << 20);
  void *p;
  switch (rnd (w, 7))
    {
    case 0:
      errno = 0;
      if ((p = malloc (huge)) != NULL || errno != ENOMEM)
        fail (w, "malloc (%zu) = %p, errno %d; expected NULL, ENOMEM", huge,
              p, errno);
      break;
    case 1:
      w->op_kind = K_CALLOC;
      errno = 0;
      if ((p = calloc (((size_t) 1 << 33) + 1, (size_t) 1 << 31)) != NULL
          || errno != ENOMEM)
        fail (w, "calloc overflowing = %p, errno %d; expected NULL, ENOMEM",
              p, errno);
      break;
    case 2:
      w->op_kind = K_POSIX_MEMALIGN;
      {
        static const size_t bad_align[] = { 0, 1, 4, 12, 24, 48, 4097 };
        size_t a = bad_align[rnd (w, 7)];
        p = (void *) 0x1234;
        int rc = posix_memalign (&p, a, 64);
        if (rc != EINVAL || p != (void *) 0x1234)
          fail (w, "posix_memalign (alignment %zu) = %d, %p; expected EINVAL"
                " and no store", a, rc, p);
      }
      break;
    case 3:
      if (malloc_usable_size (NULL) != 0)
        fail (w, "malloc_usable_size (NULL) != 0");
      free (NULL);
      if (free_sized)
        free_sized (NULL, 0);
      break;
    default:
      /* realloc/reallocarray that cannot be served leave the block.  */
      if (w->slots[slot].p == NULL)
        break;
      {
        block *b = &w->slots[slot];
        bool array = rnd (w, 2);
        w->op_kind = array ? K_REALLOCARRAY : K_REALLOC;
        errno = 0;
        p = array ? reallocarray (b->p, (size_t) 1 << 40, (size_t) 1 << 30)
                  : realloc (b->p, huge);
        if (p != NULL || errno != ENOMEM)
          fail (w, "%s of %p to an impossible size = %p, errno %d; expected "
                "NULL, ENOMEM", array ? "reallocarray" : "realloc",
                (void *) b->p, p, errno);
        check_usable (w, b, "after failed realloc");
        check_block (w, b, b->usable, "after failed realloc");
      }
      break;
    }
}
#pragma GCC diagnostic pop

static void
check_all (worker *w, const char *when)
{
  w->op_kind = -1;
  for (int i = 0; i < NSLOTS; i++)
    if (w->slots[i].p)
      {
        check_usable (w, &w->slots[i], when);
        check_block (w, &w->slots[i], w->slots[i].usable, when);
      }
}

static void
handoff_give (worker *w, int slot)
{
  handoff_slot *h = &handoff[rnd (w, NHANDOFF)];
  if (atomic_flag_test_and_set_explicit (&h->lock, memory_order_acquire))
    return;
  if (h->b.p == NULL)
    {
      h->b = w->slots[slot];
      model_remove (w, slot);
      w->handoffs_out++;
    }
  atomic_flag_clear_explicit (&h->lock, memory_order_release);
}

static void
handoff_take (worker *w)
{
  handoff_slot *h = &handoff[rnd (w, NHANDOFF)];
  if (atomic_flag_test_and_set_explicit (&h->lock, memory_order_acquire))
    return;
  block b = h->b;
  h->b.p = NULL;
  atomic_flag_clear_explicit (&h->lock, memory_order_release);
  if (b.p == NULL)
    return;
  w->handoffs_in++;
  w->op_kind = -1;
  check_usable (w, &b, "handed over");
  check_block (w, &b, b.usable, "handed over");
  int slot = (int) rnd (w, NSLOTS);
  if (w->slots[slot].p == NULL && w->live_bytes + b.req + b.align <= LIVE_CAP)
    model_add (w, slot, &b, "handed over");
  else
    free_block (w, &b);
}

static void
step (worker *w)
{
  w->ops++;
  uint64_t r = rnd (w, 100000);
  if (r < 5000)
    {
      handoff_take (w);
      return;
    }
  if (r < 5005)
    {
      w->trims++;
      malloc_trim (0);
      for (int i = 0; i < 16; i++)
        {
          int s = (int) rnd (w, NSLOTS);
          if (w->slots[s].p)
            {
              w->op_kind = -1;
              check_usable (w, &w->slots[s], "after malloc_trim");
              check_block (w, &w->slots[s], w->slots[s].usable,
                           "after malloc_trim");
            }
        }
      return;
    }
  int slot = (int) rnd (w, NSLOTS);
  if (r < 5100)
    {
      do_probe (w, slot);
      return;
    }
  if (w->live_bytes > LIVE_CAP && w->live > 0)
    {
      while (w->slots[slot].p == NULL)
        slot = (int) rnd (w, NSLOTS);
      do_free (w, slot);
      return;
    }
  if (w->slots[slot].p == NULL)
    {
      do_alloc (w, slot);
      return;
    }
  uint64_t a = rnd (w, 100);
  if (a < 45)
    do_free (w, slot);
  else if (a < 78)
    do_realloc (w, slot);
  else if (a < 92)
    {
      w->checks++;
      w->op_kind = -1;
      check_usable (w, &w->slots[slot], "check");
      check_block (w, &w->slots[slot], w->slots[slot].usable, "check");
    }
  else
    handoff_give (w, slot);
}

static void *
worker_main (void *arg)
{
  worker *w = arg;
  /* This thread's share of the worker's operations; then it exits and
     the worker goes on in a new thread.  */
  uint64_t budget = 5000 + rnd (w, 100000);
  while (budget-- && !atomic_load_explicit (&stop, memory_order_relaxed)
         && (w->max_ops == 0 || w->ops < w->max_ops))
    {
      step (w);
      if ((w->ops & 0xffff) == 0)
        check_all (w, "periodic check");
    }
  atomic_store (&w->done, 1);
  return NULL;
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
start (worker *w)
{
  atomic_store (&w->done, 0);
  int rc = pthread_create (&w->thread, NULL, worker_main, w);
  if (rc != 0)
    {
      errno = rc;
      fail (w, "pthread_create: %m");
    }
}

static unsigned long long
env_or (const char *name, unsigned long long dflt)
{
  const char *s = getenv (name);
  return s && *s ? strtoull (s, NULL, 0) : dflt;
}

int
main (int argc, char **argv)
{
  double seconds = env_or ("FUZZ_SECONDS", 90);
  int threads = (int) env_or ("FUZZ_THREADS", 4);
  uint64_t max_ops = 0;
  seed = env_or ("FUZZ_SEED", 1);
  int opt;
  while ((opt = getopt (argc, argv, "s:S:t:n:h")) != -1)
    switch (opt)
      {
      case 's': seconds = strtod (optarg, NULL); break;
      case 'S': seed = strtoull (optarg, NULL, 0); break;
      case 't': threads = atoi (optarg); break;
      case 'n': max_ops = strtoull (optarg, NULL, 0); break;
      default:
        fprintf (stderr, "usage: %s [-s SECONDS] [-S SEED] [-t THREADS] "
                 "[-n OPS-PER-WORKER]\n", argv[0]);
        return opt == 'h' ? 0 : 2;
      }
  if (threads < 1 || threads > MAX_WORKERS || seconds <= 0)
    {
      fprintf (stderr, "fuzz: bad thread count or duration\n");
      return 2;
    }
  /* FUZZ_EXPECT=ptrs (scripts/fuzz.sh) or glibc (--baseline): refuse to
     run, exit 3, unless that allocator serves this process's malloc, so
     that a preload that did not happen cannot pass as a run under ptrs.  */
  const char *expect = getenv ("FUZZ_EXPECT");
  int (*owns) (const void *) = (int (*) (const void *)) dlsym (RTLD_DEFAULT,
                                                               "ptrs_owns");
  void *probe = malloc (78);
  int served_by_ptrs = owns != NULL && probe != NULL && owns (probe);
  free (probe);
  if (expect != NULL && *expect != '\0')
    {
      int want_ptrs = strcmp (expect, "ptrs") == 0;
      if (!want_ptrs && strcmp (expect, "glibc") != 0)
        {
          fprintf (stderr, "fuzz: FUZZ_EXPECT must be ptrs or glibc\n");
          return 2;
        }
      if (served_by_ptrs != want_ptrs)
        {
          fprintf (stderr, "fuzz: malloc is %sserved by ptrs in this process, "
                   "but FUZZ_EXPECT=%s\n", served_by_ptrs ? "" : "not ",
                   expect);
          return 3;
        }
    }
  page_size = (size_t) sysconf (_SC_PAGESIZE);
  init_edge_sizes ();
  for (int i = 0; i < NHANDOFF; i++)
    atomic_flag_clear (&handoff[i].lock);

  printf ("fuzz: seed %" PRIu64 ", %d threads, %g s%s, allocator: %s\n", seed,
          threads, seconds, max_ops ? " (or the operation limit)" : "",
          served_by_ptrs ? "ptrs (it owns a fresh malloc block)"
                         : "not ptrs");
  fflush (stdout);

  /* The model lives outside the allocator under test.  */
  worker *ws = mmap (NULL, threads * sizeof (worker), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ws == MAP_FAILED)
    {
      perror ("mmap");
      return 2;
    }
  for (int i = 0; i < threads; i++)
    {
      worker *w = &ws[i];
      w->id = i;
      w->rng = seed * 0x9E3779B97F4A7C15ULL + (uint64_t) i * 0x632BE59BD9B4E019ULL;
      splitmix (&w->rng);
      w->root = NIL;
      w->max_ops = max_ops;
      start (w);
    }

  double t0 = now (), deadline = t0 + seconds;
  int running = threads;
  uint64_t generations = threads;
  while (running > 0)
    {
      struct timespec nap = { 0, 20 * 1000 * 1000 };
      nanosleep (&nap, NULL);
      if (now () >= deadline)
        atomic_store (&stop, 1);
      running = 0;
      for (int i = 0; i < threads; i++)
        {
          worker *w = &ws[i];
          if (w->thread == 0)
            continue;
          if (!atomic_load (&w->done))
            {
              running++;
              continue;
            }
          pthread_join (w->thread, NULL);
          w->thread = 0;
          if (!atomic_load (&stop) && (max_ops == 0 || w->ops < max_ops))
            {
              w->generation++;
              generations++;
              start (w);
              running++;
            }
        }
    }
  double elapsed = now () - t0;

  /* Tear down from the main thread: every block is checked and freed by a
     thread that did not allocate it.  */
  uint64_t ops = 0, count[K_NKINDS] = { 0 }, frees = 0, reallocs = 0,
           hin = 0, trims = 0, checks = 0, probes = 0;
  for (int i = 0; i < threads; i++)
    {
      worker *w = &ws[i];
      check_all (w, "final check");
      for (int s = 0; s < NSLOTS; s++)
        if (w->slots[s].p)
          {
            block b = w->slots[s];
            model_remove (w, s);
            free_block (w, &b);
          }
      ops += w->ops;
      for (int k = 0; k < K_NKINDS; k++)
        count[k] += w->count[k];
      frees += w->frees;
      reallocs += w->reallocs;
      hin += w->handoffs_in;
      trims += w->trims;
      checks += w->checks;
      probes += w->probes;
    }
  for (int i = 0; i < NHANDOFF; i++)
    if (handoff[i].b.p)
      {
        check_usable (NULL, &handoff[i].b, "final check");
        check_block (NULL, &handoff[i].b, handoff[i].b.usable, "final check");
        free (handoff[i].b.p);
      }
  malloc_trim (0);

  printf ("fuzz: calls:");
  for (int k = 0; k < K_NKINDS; k++)
    printf (" %s %" PRIu64 ",", kind_name[k], count[k]);
  printf (" frees %" PRIu64 ", reallocs %" PRIu64 " (incl. to 0), "
          "cross-thread hand-overs %" PRIu64 ", malloc_trim %" PRIu64
          ", checks %" PRIu64 ", error-path probes %" PRIu64
          ", threads started %" PRIu64 "\n",
          frees, reallocs, hin, trims, checks, probes, generations);
  printf ("fuzz: seed %" PRIu64 ": %" PRIu64 " operations in %.1f s "
          "(%.0f ops/s), 0 failures\n", seed, ops, elapsed, ops / elapsed);
  printf ("fuzz: %" PRIu64 " operations in %.0f s, 0 failures\n", ops, elapsed);
  return 0;
}

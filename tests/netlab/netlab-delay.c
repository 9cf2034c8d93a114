/* netlab-delay — a link delay (and jitter) for the network lab, on NFQUEUE.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   netlab-delay -q QUEUE -d DELAY_MS [-j JITTER_MS] [-r] [-s SEED] [-n]
 *
 * This kernel has no netem, but iptables' NFQUEUE target works: every packet
 * a rule sends to queue QUEUE (of the network namespace this program runs
 * in) waits in the kernel until a program gives its verdict. This program
 * gives each packet NF_ACCEPT DELAY_MS after it arrived, plus a jitter drawn
 * uniformly from [-JITTER_MS, +JITTER_MS] (never below zero). By default
 * packets leave in the order they came (a packet never overtakes the one
 * before it, like a real link's queue); -r lets jitter reorder them.
 *
 * Only packet ids are kept here (NFQNL_COPY_META: the payload stays in the
 * kernel), in a min-heap ordered by release time; the loop sleeps in ppoll()
 * until the next release or the next packet. "ready" on stdout once the
 * queue is bound (add the iptables rule after that: a rule without a
 * listener drops every packet). SIGTERM/SIGINT accept whatever is held and
 * exit; the totals go to stderr. Used by tests/netlab/netlab.sh.
 *
 * A delay is only as exact as the wake-ups: on a loaded machine a late
 * verdict is extra delay and jitter that the link was not given. So the
 * delayer asks for SCHED_FIFO (priority 1, still below every kernel thread
 * that uses it) when allowed; it sleeps between packets and does a few
 * microseconds of work per packet. -n keeps the normal scheduler.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

typedef struct {
  uint64_t release_ns;
  uint64_t seq;                 /* arrival order: ties leave in order */
  uint32_t id;
} Held;

static struct {
  Held *heap;
  size_t len, cap;
  uint64_t seq;
  uint64_t delay_ns, jitter_ns, last_release_ns;
  int reorder;
  uint64_t accepted, max_held;
  struct nfq_q_handle *qh;
} D;

static volatile sig_atomic_t stop;

static void
on_signal (int sig)
{
  (void) sig;
  stop = 1;
}

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int
earlier (const Held *a, const Held *b)
{
  return a->release_ns < b->release_ns || (a->release_ns == b->release_ns && a->seq < b->seq);
}

static void
heap_push (Held h)
{
  size_t i;

  if (D.len == D.cap) {
    D.cap = D.cap ? D.cap * 2 : 1024;
    D.heap = realloc (D.heap, D.cap * sizeof (Held));
    if (D.heap == NULL) {
      perror ("netlab-delay: realloc");
      exit (1);
    }
  }
  i = D.len++;
  while (i > 0 && earlier (&h, &D.heap[(i - 1) / 2])) {
    D.heap[i] = D.heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  D.heap[i] = h;
  if (D.len > D.max_held)
    D.max_held = D.len;
}

static Held
heap_pop (void)
{
  Held top = D.heap[0], last = D.heap[--D.len];
  size_t i = 0;

  for (;;) {
    size_t c = 2 * i + 1;

    if (c >= D.len)
      break;
    if (c + 1 < D.len && earlier (&D.heap[c + 1], &D.heap[c]))
      c++;
    if (!earlier (&D.heap[c], &last))
      break;
    D.heap[i] = D.heap[c];
    i = c;
  }
  if (D.len > 0)
    D.heap[i] = last;
  return top;
}

static int
on_packet (struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data)
{
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr (nfa);
  uint64_t now = now_ns (), release = now + D.delay_ns;
  Held h;

  (void) qh;
  (void) msg;
  (void) data;
  if (ph == NULL)
    return 0;
  if (D.jitter_ns > 0) {
    /* uniform in [-jitter, +jitter], drand48 is plenty for a lab */
    double j = (drand48 () * 2.0 - 1.0) * (double) D.jitter_ns;

    release = (j < 0 && (uint64_t) (-j) > D.delay_ns) ? now : (uint64_t) ((double) release + j);
  }
  if (!D.reorder && release < D.last_release_ns)
    release = D.last_release_ns;
  D.last_release_ns = release;
  h.release_ns = release;
  h.seq = D.seq++;
  h.id = ntohl (ph->packet_id);
  heap_push (h);
  return 0;
}

static void
release_due (uint64_t now)
{
  while (D.len > 0 && D.heap[0].release_ns <= now) {
    Held h = heap_pop ();

    if (nfq_set_verdict (D.qh, h.id, NF_ACCEPT, 0, NULL) < 0)
      fprintf (stderr, "netlab-delay: verdict for %" PRIu32 ": %s\n", h.id, strerror (errno));
    D.accepted++;
  }
}

static void
usage (const char *argv0)
{
  fprintf (stderr, "usage: %s -q QUEUE -d DELAY_MS [-j JITTER_MS] [-r] [-s SEED] [-n]\n", argv0);
  exit (2);
}

int
main (int argc, char **argv)
{
  struct nfq_handle *h;
  struct sigaction sa;
  char buf[65536 + 4096];
  int opt, fd, queue = -1, realtime = 1;
  double delay_ms = -1, jitter_ms = 0;
  long seed = (long) getpid ();
  uint64_t enobufs = 0;

  while ((opt = getopt (argc, argv, "q:d:j:rs:n")) != -1) {
    switch (opt) {
      case 'q':
        queue = atoi (optarg);
        break;
      case 'd':
        delay_ms = atof (optarg);
        break;
      case 'j':
        jitter_ms = atof (optarg);
        break;
      case 'r':
        D.reorder = 1;
        break;
      case 's':
        seed = atol (optarg);
        break;
      case 'n':
        realtime = 0;
        break;
      default:
        usage (argv[0]);
    }
  }
  if (queue < 0 || queue > 65535 || delay_ms < 0 || jitter_ms < 0 || optind != argc)
    usage (argv[0]);
  D.delay_ns = (uint64_t) (delay_ms * 1e6);
  D.jitter_ns = (uint64_t) (jitter_ms * 1e6);
  srand48 (seed);

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);

  if (realtime) {
    struct sched_param sp = { .sched_priority = 1 };

    if (sched_setscheduler (0, SCHED_FIFO, &sp) < 0)
      fprintf (stderr, "netlab-delay: no SCHED_FIFO (%s): normal scheduling\n", strerror (errno));
  }

  h = nfq_open ();
  if (h == NULL) {
    perror ("netlab-delay: nfq_open");
    return 1;
  }
  D.qh = nfq_create_queue (h, (uint16_t) queue, on_packet, NULL);
  if (D.qh == NULL) {
    fprintf (stderr, "netlab-delay: cannot bind queue %d: %s\n", queue, strerror (errno));
    return 1;
  }
  if (nfq_set_mode (D.qh, NFQNL_COPY_META, 0) < 0) {
    perror ("netlab-delay: nfq_set_mode");
    return 1;
  }
  nfq_set_queue_maxlen (D.qh, 65536);
  /* a burst of a few thousand packets must not overflow the socket */
  nfnl_rcvbufsiz (nfq_nfnlh (h), 16 * 1024 * 1024);
  fd = nfq_fd (h);
  printf ("ready\n");
  fflush (stdout);

  while (!stop) {
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    struct timespec ts, *tsp = NULL;
    uint64_t now = now_ns ();
    int n;

    release_due (now);
    if (D.len > 0) {
      uint64_t wait = D.heap[0].release_ns - now;

      ts.tv_sec = (time_t) (wait / 1000000000u);
      ts.tv_nsec = (long) (wait % 1000000000u);
      tsp = &ts;
    }
    n = ppoll (&pfd, 1, tsp, NULL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror ("netlab-delay: ppoll");
      break;
    }
    if (n == 0)
      continue;
    /* drain what is there: every packet gets its arrival time now */
    for (int i = 0; i < 4096; i++) {
      ssize_t r = recv (fd, buf, sizeof buf, MSG_DONTWAIT);

      if (r < 0) {
        if (errno == ENOBUFS) {
          enobufs++;            /* the kernel dropped messages: counted */
          continue;
        }
        break;
      }
      nfq_handle_packet (h, buf, (int) r);
    }
  }

  /* let whatever is held go: the namespace may live on without us */
  release_due (UINT64_MAX);
  fprintf (stderr, "netlab-delay: queue %d: %" PRIu64 " packets delayed, at most %" PRIu64
      " held at once, %" PRIu64 " receive overruns\n", queue, D.accepted, D.max_held, enobufs);
  nfq_destroy_queue (D.qh);
  nfq_close (h);
  free (D.heap);
  return 0;
}

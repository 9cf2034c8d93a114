/* Process set-up shared by the GStreamer test programs and pt-gst-peer.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * OpenSSL 3 (used by GStreamer's DTLS elements inside webrtcbin) registers
 * an atexit handler that frees every thread's OpenSSL state. GLib's pooled
 * threads (GstTask streaming threads such as nicesrc:src or a relay queue's
 * src task, DTLS timeout workers) that used OpenSSL are still winding down
 * for a moment after a pipeline reached NULL: one that runs its thread-local
 * destructor while the main thread is in OPENSSL_cleanup() frees the same
 * block twice (ASan: "attempting double-free … freed by thread T0" inside
 * libcrypto), or corrupts the heap ("corrupted double-linked list" in
 * __nptl_deallocate_tsd). A check fork ends with exit() right after its
 * test, and pt-gst-peer right after its pipeline stopped, so the race is
 * real for every test process. The process memory goes away at exit anyway:
 * skip that cleanup (OPENSSL_INIT_NO_ATEXIT must come before anything else
 * initialises OpenSSL, hence a constructor).
 */
#pragma once

#ifdef PT_HAVE_LIBCRYPTO
#include <openssl/crypto.h>

__attribute__ ((constructor))
static void
pt_gst_process_no_openssl_atexit (void)
{
  OPENSSL_init_crypto (OPENSSL_INIT_NO_ATEXIT, NULL);
}
#endif

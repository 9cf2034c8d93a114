/* A throw-away CA and a server certificate for 127.0.0.1 it signs, made at
 * test time with the openssl CLI (scripts/deps) in a temporary directory:
 * tests/test-tls.c and tests/gst/test-gst-tls.c.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>

static char *pt_tls_dir;  /* of the certificates, between make and remove */

static inline void
pt_tls_run (const char *cmdline)
{
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) argv = NULL;
  g_autofree char *err = NULL;
  int status = 0;
  fail_unless (g_shell_parse_argv (cmdline, NULL, &argv, &error), "%s", cmdline);
  fail_unless (g_spawn_sync (pt_tls_dir, argv, NULL, G_SPAWN_SEARCH_PATH |
          G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err, &status, &error),
      "%s: %s", cmdline, error ? error->message : "");
  fail_unless (g_spawn_check_wait_status (status, NULL), "%s: %s", cmdline, err);
}

static inline char *
pt_tls_path (const char *name)
{
  return g_build_filename (pt_tls_dir, name, NULL);
}

/* A CA, and a certificate for 127.0.0.1 it signs. */
static inline void
pt_tls_make_certificates (void)
{
  pt_tls_dir = g_dir_make_tmp ("peertree-tls-XXXXXX", NULL);
  fail_unless (pt_tls_dir != NULL);
  pt_tls_run ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout ca.key -out ca.pem -days 1 -subj /CN=peertree-test-ca "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
  pt_tls_run ("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout server.key -out server.csr -subj /CN=127.0.0.1");
  g_autofree char *ext = pt_tls_path ("server.ext");
  fail_unless (g_file_set_contents (ext, "basicConstraints=CA:FALSE\n"
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n", -1, NULL));
  pt_tls_run ("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 1 "
      "-extfile server.ext -out server.pem");
}

static inline void
pt_tls_remove_certificates (void)
{
  const char *names[] = { "ca.key", "ca.pem", "server.key", "server.csr", "server.ext",
    "server.pem" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *p = pt_tls_path (names[i]);
    g_unlink (p);
  }
  g_rmdir (pt_tls_dir);
  g_clear_pointer (&pt_tls_dir, g_free);
}


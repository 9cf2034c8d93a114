/* Replays files through the fuzzing harness without libFuzzer: each argument
 * is a file or a directory of files (the seed corpus, the regressions).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
replay (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len;
  g_autoptr (GError) error = NULL;
  if (!g_file_get_contents (path, &contents, &len, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  LLVMFuzzerTestOneInput ((const uint8_t *) contents, len);
  return 0;
}

int
main (int argc, char **argv)
{
  int n = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    if (!g_file_test (argv[i], G_FILE_TEST_IS_DIR)) {
      failed |= replay (argv[i]);
      n++;
      continue;
    }
    g_autoptr (GDir) dir = g_dir_open (argv[i], 0, NULL);
    const char *name;
    while (dir && (name = g_dir_read_name (dir))) {
      g_autofree char *path = g_build_filename (argv[i], name, NULL);
      failed |= replay (path);
      n++;
    }
  }
  printf ("%d inputs replayed\n", n);
  return failed || n == 0;
}

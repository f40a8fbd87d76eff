/* keyfile.h: CURVE keys in ZeroMQ's Z85 text form, and the files that hold
 * them (docs/SECURITY.md).  Shared by claimflowd (its secret key, the
 * allow-lists of its config file) and claimctl (keygen, --key,
 * --server-key).
 *
 * A key file holds one key: 40 Z85 characters (RFC 32), optionally followed
 * by white space (a newline), nothing else.  `NAME.key` holds a secret key
 * and must be readable by its owner only; `NAME.pub` holds the public key.
 *
 * Messages name files, never key material: a secret key must not reach a
 * log, and "logs carry no values" is easier to keep without exceptions.
 */
#ifndef CF_KEYFILE_H
#define CF_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cf_err.h"

#define CF_KEY_Z85_LEN 40            /* a CURVE key in Z85 */
#define CF_KEY_BUFLEN  (CF_KEY_Z85_LEN + 1)
#define CF_KEY_BIN_LEN 32            /* the same key in binary */

/* True when s[0..len) is exactly 40 Z85 characters that decode to a 32-byte
 * key (every 5-character group fits 32 bits).  If ret is not NULL, the
 * binary key is written there on success. */
bool cf_key_z85_decode(const char *s, size_t len, uint8_t ret[CF_KEY_BIN_LEN]);

/* Read the key file at path into ret (40 characters and a NUL).  With
 * secret, the file must also be a regular file that neither group nor
 * others may read or write (like ssh's private keys).  0, or CF_EBADREQ
 * with reterr->message "PATH: what is wrong" (never the file's content). */
int cf_key_read(const char *path, bool secret, char ret[CF_KEY_BUFLEN], cf_error_t *reterr);

/* The public key (Z85) of the Z85 secret key secret.  0, or CF_EBADREQ
 * when secret is not a key or libzmq has no CURVE. */
int cf_key_public(const char *secret, char ret[CF_KEY_BUFLEN]);

/* Make a new key pair; write the secret key to `base.key` (mode 0600) and
 * the public key to `base.pub` (mode 0644 less the umask).  Neither file may
 * exist already: nothing is overwritten.  0 and the public key in
 * ret_public, or CF_EBADREQ (reterr names the file and why; nothing is left
 * behind), or CF_EINTERNAL when libzmq was built without CURVE. */
int cf_key_generate(const char *base, char ret_public[CF_KEY_BUFLEN], cf_error_t *reterr);

/* Overwrite a key buffer so the secret does not linger in memory. */
void cf_key_wipe(char key[CF_KEY_BUFLEN]);

#endif

#ifndef CAUSAL_TUNE_CRYPTO_SHIM_H
#define CAUSAL_TUNE_CRYPTO_SHIM_H
/* The EVP digest interface: OpenSSL 3 deprecates the per-algorithm SHA256_Init family. */
#include <openssl/evp.h>
#endif

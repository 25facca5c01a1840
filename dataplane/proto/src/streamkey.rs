//! Locally generated stream keys: msgpack map `{C, U, E, T?}`, AES-128-CTR, base64url.

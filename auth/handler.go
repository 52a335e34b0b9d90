package auth

import (
	"net/http"
	"strings"

	jsonrpcauth "github.com/filecoin-project/go-jsonrpc/auth"
)

// RequireToken serves next only to requests that carry a valid token
// (Authorization: Bearer <token>, or ?token=), with the token's permissions
// in the request's context for a PermissionedProxy. A request without a
// token, or with a bad one, gets 401 and never reaches next.
func RequireToken(secret []byte, next http.Handler) http.Handler {
	return handler(secret, false, next)
}

// OptionalToken is RequireToken, except that a request without a token
// reaches next with no permissions in its context, so that the proxy's
// default permissions (read, as on Lotus) apply. A bad token still gets
// 401.
func OptionalToken(secret []byte, next http.Handler) http.Handler {
	return handler(secret, true, next)
}

func handler(secret []byte, anonymous bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			http.Error(w, "malformed Authorization header: want \"Bearer <token>\"", http.StatusUnauthorized)
			return
		}
		if token == "" {
			if !anonymous {
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, "this API needs a token (Authorization: Bearer <token>)", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		perms, err := Verify(secret, token)
		if err != nil {
			http.Error(w, "the token is not valid here", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(jsonrpcauth.WithPerm(r.Context(), perms)))
	})
}

// bearer returns the request's token ("" when none); ok is false for an
// Authorization header that is not a bearer token.
func bearer(r *http.Request) (token string, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return r.URL.Query().Get("token"), true
	}
	t, found := strings.CutPrefix(h, "Bearer ")
	if !found {
		return "", false
	}
	return strings.TrimSpace(t), true
}

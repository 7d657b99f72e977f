package api

import (
	_ "embed"
	"encoding/json"
	"net/http"
)

//go:embed openapi.json
var openapiDoc []byte

func (a *API) openapi(*http.Request) (any, error) { return json.RawMessage(openapiDoc), nil }

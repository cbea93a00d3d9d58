package vidmsim

import "net/http"

// VCFSource places a directory under a VCF identity provider. (Being built.)
type VCFSource struct{}

// classifyVCF resolves VCF's identity-provider routes. (Being built.)
func (s *Server) classifyVCF(*http.Request) route { return route{} }

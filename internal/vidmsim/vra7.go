package vidmsim

import "net/http"

// classifyVRA7 resolves vRA 7's identity-service routes. (Being built.)
func (s *Server) classifyVRA7(*http.Request) route { return route{} }

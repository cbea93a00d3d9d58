package vidmsim

import "net/http"

// classifyCloud resolves vRA Cloud's routes: vIDM's, plus its token service. (Being built.)
func (s *Server) classifyCloud(r *http.Request) route { return classify(r) }

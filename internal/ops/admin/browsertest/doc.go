// Package browsertest holds no code. Its tests load the admin port's status page in headless
// Chromium (/usr/bin/chromium): over the admin package's fake Source, and from a running worker.
// It is a module of its own, beside the repository's, so that the browser driver (chromedp) is
// a dependency of these tests only and not of the worker's module; a replace directive points
// it at the repository's module, whose internal packages it imports.
package browsertest

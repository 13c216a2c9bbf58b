// Program otelcol is the otel-dist custom OpenTelemetry Collector
// distribution: only the components that the otel-dist stack configures.
//
// Written by hand after the layout that the OpenTelemetry Collector Builder
// (go.opentelemetry.io/collector/cmd/builder) generates. Every collector
// module in go.mod is kept at one release; the release is pinned in
// otel_dist/stack/versions.py, which build.py checks against go.mod and passes
// in as main.version.
package main

import (
	"os"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// version is set at link time: -ldflags "-X main.version=...".
var version = "dev"

const (
	envProviderPkg  = "go.opentelemetry.io/collector/confmap/provider/envprovider"
	fileProviderPkg = "go.opentelemetry.io/collector/confmap/provider/fileprovider"
	yamlProviderPkg = "go.opentelemetry.io/collector/confmap/provider/yamlprovider"
)

func main() {
	deps := buildDeps()
	scheme := func(f confmap.ProviderFactory) string {
		return f.Create(confmap.ProviderSettings{}).Scheme()
	}

	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol",
			Description: "otel-dist OpenTelemetry Collector distribution",
			Version:     version,
		},
		Factories: func() (otelcol.Factories, error) { return components(deps) },
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
			},
		},
		ProviderModules: map[string]string{
			scheme(envprovider.NewFactory()):  moduleOf(deps, envProviderPkg),
			scheme(fileprovider.NewFactory()): moduleOf(deps, fileProviderPkg),
			scheme(yamlprovider.NewFactory()): moduleOf(deps, yamlProviderPkg),
		},
	}

	if err := otelcol.NewCommand(set).Execute(); err != nil {
		// cobra has already printed the error.
		os.Exit(1)
	}
}

// buildDeps maps each module linked into the binary to its version.
func buildDeps() map[string]string {
	deps := map[string]string{}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return deps
	}
	for _, d := range info.Deps {
		deps[d.Path] = d.Version
	}
	return deps
}

// moduleOf names the module (and its version) that provides package pkg, in
// the "path version" form that `otelcol components` prints.
func moduleOf(deps map[string]string, pkg string) string {
	best := ""
	for path := range deps {
		if (pkg == path || strings.HasPrefix(pkg, path+"/")) && len(path) > len(best) {
			best = path
		}
	}
	if best == "" {
		return ""
	}
	return best + " " + deps[best]
}

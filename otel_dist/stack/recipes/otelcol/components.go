package main

import (
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/attributesprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/tailsamplingprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor"
)

const (
	core    = "go.opentelemetry.io/collector/"
	contrib = "github.com/open-telemetry/opentelemetry-collector-contrib/"
)

// entry pairs a component factory with the import path it comes from, so that
// `otelcol components` can name the module and version of each component.
type entry[T component.Factory] struct {
	factory T
	pkg     string
}

// aliasProvider is implemented by factories whose component was renamed; the
// old name stays usable in configs (with a deprecation warning).
type aliasProvider interface{ DeprecatedAlias() component.Type }

func register[T component.Factory](deps map[string]string, entries ...entry[T]) (map[component.Type]T, map[component.Type]string, error) {
	factories := make([]T, 0, len(entries))
	modules := make(map[component.Type]string, len(entries))
	for _, e := range entries {
		factories = append(factories, e.factory)
		module := moduleOf(deps, e.pkg)
		modules[e.factory.Type()] = module
		if ap, ok := any(e.factory).(aliasProvider); ok && ap.DeprecatedAlias().String() != "" {
			modules[ap.DeprecatedAlias()] = module
		}
	}
	m, err := otelcol.MakeFactoryMap(factories...)
	return m, modules, err
}

// components lists every component of the distribution; nothing else is
// linked in.
func components(deps map[string]string) (otelcol.Factories, error) {
	var err error
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}

	if f.Extensions, f.ExtensionModules, err = register(deps,
		entry[extension.Factory]{healthcheckextension.NewFactory(), contrib + "extension/healthcheckextension"},
		// Optional OTLP authentication between apps and the collector (collector/auth-tls.yaml).
		entry[extension.Factory]{bearertokenauthextension.NewFactory(), contrib + "extension/bearertokenauthextension"},
		// Persistent sending queues: what the receivers acknowledged survives a crash (collector/otelcol.yaml).
		entry[extension.Factory]{filestorage.NewFactory(), contrib + "extension/storage/filestorage"},
	); err != nil {
		return otelcol.Factories{}, err
	}

	if f.Receivers, f.ReceiverModules, err = register(deps,
		entry[receiver.Factory]{otlpreceiver.NewFactory(), core + "receiver/otlpreceiver"},
	); err != nil {
		return otelcol.Factories{}, err
	}

	if f.Processors, f.ProcessorModules, err = register(deps,
		entry[processor.Factory]{memorylimiterprocessor.NewFactory(), core + "processor/memorylimiterprocessor"},
		entry[processor.Factory]{batchprocessor.NewFactory(), core + "processor/batchprocessor"},
		entry[processor.Factory]{filterprocessor.NewFactory(), contrib + "processor/filterprocessor"},
		entry[processor.Factory]{transformprocessor.NewFactory(), contrib + "processor/transformprocessor"},
		entry[processor.Factory]{resourceprocessor.NewFactory(), contrib + "processor/resourceprocessor"},
		entry[processor.Factory]{attributesprocessor.NewFactory(), contrib + "processor/attributesprocessor"},
		entry[processor.Factory]{tailsamplingprocessor.NewFactory(), contrib + "processor/tailsamplingprocessor"},
	); err != nil {
		return otelcol.Factories{}, err
	}

	if f.Exporters, f.ExporterModules, err = register(deps,
		entry[exporter.Factory]{debugexporter.NewFactory(), core + "exporter/debugexporter"},
		entry[exporter.Factory]{otlpexporter.NewFactory(), core + "exporter/otlpexporter"},
		entry[exporter.Factory]{otlphttpexporter.NewFactory(), core + "exporter/otlphttpexporter"},
		entry[exporter.Factory]{prometheusremotewriteexporter.NewFactory(), contrib + "exporter/prometheusremotewriteexporter"},
	); err != nil {
		return otelcol.Factories{}, err
	}

	if f.Connectors, f.ConnectorModules, err = register[connector.Factory](deps); err != nil {
		return otelcol.Factories{}, err
	}

	return f, nil
}

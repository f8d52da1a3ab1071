// composecheck loads a compose file with compose-go, the loader `docker
// compose` is built on: the file is validated against the Compose
// Specification's schema, ${VAR:-default} interpolated from the environment,
// YAML anchors and merge keys resolved. It prints the resulting services as
// JSON for tests/deploy/check-compose.sh to check; a file docker compose would
// refuse makes it exit 1 with docker compose's message.
//
// Usage: composecheck FILE
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

type port struct {
	HostIP    string `json:"host_ip"`
	Published string `json:"published"`
	Target    uint32 `json:"target"`
}

type volume struct {
	Type   string `json:"type"`
	Source string `json:"source"`
	Target string `json:"target"`
}

type service struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Hostname    string            `json:"hostname"`
	Build       bool              `json:"build"`
	Environment map[string]string `json:"environment"`
	Ports       []port            `json:"ports"`
	Volumes     []volume          `json:"volumes"`
	SecurityOpt []string          `json:"security_opt"`
	Healthcheck []string          `json:"healthcheck"`
	Restart     string            `json:"restart"`
}

type summary struct {
	Name     string    `json:"name"`
	Services []service `json:"services"`
	Volumes  []string  `json:"volumes"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck FILE")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithOsEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	out := summary{Name: p.Name}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		o := service{Name: name, Image: s.Image, Hostname: s.Hostname, Build: s.Build != nil,
			Environment: map[string]string{}, SecurityOpt: s.SecurityOpt, Restart: s.Restart}
		for k, v := range s.Environment {
			if v != nil {
				o.Environment[k] = *v
			}
		}
		for _, pc := range s.Ports {
			o.Ports = append(o.Ports, port{HostIP: pc.HostIP, Published: pc.Published, Target: pc.Target})
		}
		for _, v := range s.Volumes {
			o.Volumes = append(o.Volumes, volume{Type: v.Type, Source: v.Source, Target: v.Target})
		}
		if s.HealthCheck != nil {
			o.Healthcheck = s.HealthCheck.Test
		}
		out.Services = append(out.Services, o)
	}
	for name := range p.Volumes {
		out.Volumes = append(out.Volumes, name)
	}
	sort.Strings(out.Volumes)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
}

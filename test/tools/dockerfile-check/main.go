// dockerfile-check converts a Dockerfile to BuildKit LLB and runs BuildKit's Dockerfile
// linter (the rules of `docker build --check`), offline: base images are not pulled, a
// minimal Debian-like image config stands in for them. It prints a JSON report and exits
// 1 on a conversion error or any lint warning.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

type offlineResolver struct{ resolved []string }

func (r *offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	r.resolved = append(r.resolved, ref)
	cfg := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd": []string{"node"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
	}
	dt, err := json.Marshal(cfg)
	if err != nil {
		return "", "", nil, err
	}
	return ref, digest.FromBytes(dt), dt, nil
}

type warning struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Line    int32  `json:"line"`
}

type report struct {
	Warnings   []warning         `json:"warnings"`
	Error      string            `json:"error,omitempty"`
	BaseImages []string          `json:"baseImages"`
	Stages     int               `json:"llbOps"`
	Labels     map[string]string `json:"labels,omitempty"`
	User       string            `json:"user"`
	Entrypoint []string          `json:"entrypoint"`
	Ports      []string          `json:"exposedPorts"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-check DOCKERFILE")
		os.Exit(2)
	}
	dt, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	platform := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	res := &offlineResolver{}
	src := llb.Local("dockerfile")
	srcDef, err := src.Marshal(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sourceMap := llb.NewSourceMap(&src, os.Args[1], "Dockerfile", dt)
	sourceMap.Definition = srcDef
	rep := report{Warnings: []warning{}, BaseImages: []string{}, Ports: []string{}}
	opt := dockerfile2llb.ConvertOpt{
		Config:         dockerui.Config{},
		MetaResolver:   res,
		TargetPlatform: &platform,
		SourceMap:      sourceMap,
	}
	lint, err := dockerfile2llb.DockerfileLint(ctx, dt, opt)
	if err != nil {
		rep.Error = err.Error()
	} else {
		for _, w := range lint.Warnings {
			line := int32(0)
			if len(w.Location.Ranges) > 0 {
				line = w.Location.Ranges[0].Start.Line
			}
			rep.Warnings = append(rep.Warnings, warning{Rule: w.RuleName, Message: w.Detail, Line: line})
		}
		if lint.Error != nil {
			rep.Error = lint.Error.Message
		}
	}
	if rep.Error == "" {
		out, err := dockerfile2llb.Dockerfile2LLB(ctx, dt, opt)
		if err != nil {
			rep.Error = err.Error()
		} else {
			def, err := out.State.Marshal(ctx, llb.Platform(platform))
			if err != nil {
				rep.Error = err.Error()
			} else {
				rep.Stages = len(def.Def)
			}
			if out.Image != nil {
				rep.Labels = out.Image.Config.Labels
				rep.User = out.Image.Config.User
				rep.Entrypoint = out.Image.Config.Entrypoint
				for p := range out.Image.Config.ExposedPorts {
					rep.Ports = append(rep.Ports, p)
				}
			}
		}
	}
	rep.BaseImages = res.resolved
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
	if rep.Error != "" || len(rep.Warnings) > 0 {
		os.Exit(1)
	}
}

package restapi

import (
	"context"
	"net/http"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Modules is what the API needs for module identities, module twins and
// module direct methods. Its errors are *iothub.Error like Devices'
// (ModuleNotFound, ModuleAlreadyExistsOnDevice, DeviceNotFound, ...).
type Modules interface {
	CreateModule(ctx context.Context, m registry.Module) (registry.Module, error)
	UpdateModule(ctx context.Context, m registry.Module, ifMatch string) (registry.Module, error)
	GetModule(deviceID, moduleID string) (registry.Module, error)
	ListModules(deviceID string) ([]registry.Module, error)
	DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error
	GetModuleTwin(deviceID, moduleID string) (registry.Twin, error)
	PatchModuleTwinWith(ctx context.Context, deviceID, moduleID string, p iothub.TwinPatch, ifMatch string) (registry.Twin, error)
	ReplaceModuleTwinWith(ctx context.Context, deviceID, moduleID string, p iothub.TwinPatch, ifMatch string) (registry.Twin, error)
	InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, req iothub.MethodRequest) (iothub.MethodResult, error)
}

// moduleRoutes registers the module endpoints, as IoT Hub has them, when
// Config.Modules is set.
func (s *Server) moduleRoutes() {
	if s.cfg.Modules == nil {
		return
	}
	s.route("PUT /devices/{id}/modules/{mid}", RegistryWrite, s.putModule)
	s.route("GET /devices/{id}/modules/{mid}", RegistryRead, s.getModule)
	s.route("DELETE /devices/{id}/modules/{mid}", RegistryWrite, s.deleteModule)
	s.route("GET /devices/{id}/modules", RegistryRead, s.listModules)
	s.route("GET /twins/{id}/modules/{mid}", ServiceConnect, s.getModuleTwin)
	s.route("PATCH /twins/{id}/modules/{mid}", ServiceConnect, s.patchModuleTwin)
	s.route("PUT /twins/{id}/modules/{mid}", ServiceConnect, s.replaceModuleTwin)
	s.route("POST /twins/{id}/modules/{mid}/methods", ServiceConnect, s.invokeModuleMethod)
}

// putModule creates a module (no If-Match) or updates it (If-Match "*" or
// its etag). The body's deviceId and moduleId may be left out; if given
// they must be the path's.
func (s *Server) putModule(w http.ResponseWriter, r *http.Request) error {
	dev, mod := r.PathValue("id"), r.PathValue("mid")
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	var m registry.Module
	if err := decodeJSON(body, &m, false, "module identity"); err != nil {
		return err
	}
	if m.DeviceID == "" {
		m.DeviceID = dev
	} else if m.DeviceID != dev {
		return badRequest("the body's deviceId %q does not match the device id %q in the path", m.DeviceID, dev)
	}
	if m.ModuleID == "" {
		m.ModuleID = mod
	} else if m.ModuleID != mod {
		return badRequest("the body's moduleId %q does not match the module id %q in the path", m.ModuleID, mod)
	}
	var out registry.Module
	if ifMatch := r.Header.Get("If-Match"); ifMatch == "" {
		out, err = s.cfg.Modules.CreateModule(r.Context(), m)
	} else {
		out, err = s.cfg.Modules.UpdateModule(r.Context(), m, ifMatch)
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

func (s *Server) getModule(w http.ResponseWriter, r *http.Request) error {
	m, err := s.cfg.Modules.GetModule(r.PathValue("id"), r.PathValue("mid"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, m)
	return nil
}

func (s *Server) listModules(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.cfg.Modules.ListModules(r.PathValue("id"))
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []registry.Module{}
	}
	s.writeJSON(w, r, http.StatusOK, ms)
	return nil
}

// deleteModule answers 204, like deleting a device.
func (s *Server) deleteModule(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Modules.DeleteModule(r.Context(), r.PathValue("id"), r.PathValue("mid"), r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getModuleTwin(w http.ResponseWriter, r *http.Request) error {
	t, err := s.cfg.Modules.GetModuleTwin(r.PathValue("id"), r.PathValue("mid"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, t)
	return nil
}

func (s *Server) patchModuleTwin(w http.ResponseWriter, r *http.Request) error {
	mod := r.PathValue("mid")
	return s.writeTwin(w, r, func(ctx context.Context, id string, p iothub.TwinPatch, ifMatch string) (registry.Twin, error) {
		return s.cfg.Modules.PatchModuleTwinWith(ctx, id, mod, p, ifMatch)
	})
}

func (s *Server) replaceModuleTwin(w http.ResponseWriter, r *http.Request) error {
	mod := r.PathValue("mid")
	return s.writeTwin(w, r, func(ctx context.Context, id string, p iothub.TwinPatch, ifMatch string) (registry.Twin, error) {
		return s.cfg.Modules.ReplaceModuleTwinWith(ctx, id, mod, p, ifMatch)
	})
}

func (s *Server) invokeModuleMethod(w http.ResponseWriter, r *http.Request) error {
	mod := r.PathValue("mid")
	return s.callMethod(w, r, func(ctx context.Context, id string, req iothub.MethodRequest) (iothub.MethodResult, error) {
		return s.cfg.Modules.InvokeModuleMethod(ctx, id, mod, req)
	})
}

// Interactive API docs: Swagger UI (served by this service, no CDN) over
// this service's own OpenAPI document.
"use strict";

window.addEventListener("load", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    // No badge from the public validator: nothing leaves for another host.
    validatorUrl: null,
  });
});

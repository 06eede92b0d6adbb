// Starts Swagger UI on the API documentation page. The schema URL comes from the page
// (data-schema-url), so this file holds no configuration of its own.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || !window.SwaggerUIBundle) {
    return;
  }
  window.SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: false,
  });
})();

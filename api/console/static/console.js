// Shipyard console: live regions. An element with `data-live="<url>"` is refetched and
// replaced when the tenant's event stream says something happened (debounced), so the page
// changes without a reload. Nothing else runs here: every action is a plain form.
(function () {
  "use strict";
  var regions = document.querySelectorAll("[data-live]");
  if (!regions.length || !window.EventSource) {
    return;
  }
  var pending = null;
  var busy = false;

  function refresh() {
    pending = null;
    if (busy) {
      pending = setTimeout(refresh, 300);
      return;
    }
    busy = true;
    var jobs = Array.prototype.map.call(regions, function (region) {
      // Leave a region alone while someone types into one of its forms.
      if (region.contains(document.activeElement) && document.activeElement.tagName !== "BODY") {
        return Promise.resolve();
      }
      return fetch(region.getAttribute("data-live"), {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
      }).then(function (answer) {
        if (answer.status === 401 || answer.redirected) {
          window.location.reload();
          return null;
        }
        return answer.ok ? answer.text() : null;
      }).then(function (html) {
        if (html !== null && html !== undefined) {
          region.innerHTML = html;
          region.setAttribute("data-refreshed", String(Date.now()));
        }
      });
    });
    Promise.all(jobs).catch(function () {}).then(function () {
      busy = false;
    });
  }

  function soon() {
    if (pending === null) {
      pending = setTimeout(refresh, 250);
    }
  }

  var appFilter = document.querySelector("[data-app-id]");
  var onlyApp = appFilter ? appFilter.getAttribute("data-app-id") : null;
  var stream = new EventSource("/console/events");
  var opened = false;
  stream.onopen = function () {
    document.body.setAttribute("data-live", "connected");
    // After a reconnect, what happened meanwhile is sent again from Last-Event-ID.
    opened = true;
  };
  stream.onmessage = function (message) {
    if (!opened) {
      return;
    }
    if (onlyApp) {
      try {
        var event = JSON.parse(message.data);
        if (event.app_id && event.app_id !== onlyApp) {
          return;
        }
      } catch (ignored) {
        // Not JSON: refresh anyway.
      }
    }
    soon();
  };
})();

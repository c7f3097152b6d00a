// postdeploy's web-vitals collector, injected with Playwright's page.add_init_script before
// any script of the page runs (DevTools-injected, so the page's CSP does not apply to it).
// It only records raw PerformanceObserver entries; postdeploy/vitals.py computes LCP, CLS,
// INP, FCP and TTFB from them, the way the web-vitals library defines them.
(() => {
  if (window.__postdeployVitals) return;
  const store = {
    lcp: [],
    shifts: [],
    events: [],
    firstInput: [],
    paints: [],
    unsupported: [],
    lastEntryAt: 0,
  };
  Object.defineProperty(window, "__postdeployVitals", { value: store });

  const describe = (element) => {
    if (!element) return "";
    const id = element.id ? `#${element.id}` : "";
    return `${element.tagName.toLowerCase()}${id}`;
  };
  const observe = (type, record, options = {}) => {
    try {
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) record(entry);
      }).observe({ type, buffered: true, ...options });
    } catch (error) {
      store.unsupported.push(`${type}: ${error.message}`);
    }
  };

  observe("largest-contentful-paint", (entry) => {
    store.lcp.push({ time: entry.startTime, size: entry.size, element: describe(entry.element) });
    store.lastEntryAt = performance.now();
  });
  observe("layout-shift", (entry) => {
    store.shifts.push({
      time: entry.startTime,
      value: entry.value,
      hadRecentInput: entry.hadRecentInput,
    });
    store.lastEntryAt = performance.now();
  });
  observe("paint", (entry) => {
    store.paints.push({ name: entry.name, time: entry.startTime });
  });
  observe(
    "event",
    (entry) => {
      store.events.push({
        name: entry.name,
        time: entry.startTime,
        duration: entry.duration,
        interactionId: entry.interactionId || 0,
      });
    },
    { durationThreshold: 16 },
  );
  observe("first-input", (entry) => {
    store.firstInput.push({ name: entry.name, time: entry.startTime, duration: entry.duration });
  });
})();

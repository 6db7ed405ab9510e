// The colour theme: the system's (the default), light or dark, chosen with the switch in the top bar and
// remembered in this browser. A classic script in <head>, not a module, so that a remembered choice
// applies before the first paint (no flash of the other theme); the CSP allows it, being a file of ours.
// "system" sets nothing: the stylesheet's light-dark() colours then follow prefers-color-scheme live.

(() => {
  const KEY = "taskservice.theme";
  const THEMES = ["system", "light", "dark"];
  const root = document.documentElement;

  function stored() {
    try {
      const theme = localStorage.getItem(KEY);
      return THEMES.includes(theme) ? theme : "system";
    } catch {
      return "system"; // storage refused (a privacy setting): the system's theme, not remembered
    }
  }

  function apply(theme) {
    if (theme === "system") delete root.dataset.theme;
    else root.dataset.theme = theme;
    for (const button of document.querySelectorAll("[data-theme-choice]")) {
      button.setAttribute("aria-pressed", String(button.dataset.themeChoice === theme));
    }
  }

  function choose(theme) {
    try {
      if (theme === "system") localStorage.removeItem(KEY);
      else localStorage.setItem(KEY, theme);
    } catch {
      // not remembered, still applied
    }
    apply(theme);
  }

  apply(stored());
  document.addEventListener("DOMContentLoaded", () => {
    apply(stored());
    for (const button of document.querySelectorAll("[data-theme-choice]")) {
      button.addEventListener("click", () => choose(button.dataset.themeChoice));
    }
  });
  // Chosen in another tab of the dashboard: this one follows.
  window.addEventListener("storage", (event) => {
    if (event.key === KEY || event.key === null) apply(stored());
  });
})();

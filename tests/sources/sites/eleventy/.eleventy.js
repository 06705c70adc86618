module.exports = function () {
  return { dir: { input: ".", output: "_site" } };
};

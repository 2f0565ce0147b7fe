// sources-sha256: 1b62c113c22b964ee7abc9ffa02da10330e7b078337391c6e7883f445d347b43
// Built from web/src by web/build.mjs; do not edit.
"use strict";
(() => {
  // src/api.ts
  var params = new URLSearchParams(window.location.search);
  var TOKEN = params.get("token") ?? "";
  var ApiError = class extends Error {
    constructor(message, field, status) {
      super(message);
      this.field = field;
      this.status = status;
    }
  };
  async function api(path, body, method) {
    const init = {
      method: method ?? (body === void 0 ? "GET" : "POST"),
      headers: { Authorization: `token ${TOKEN}`, "Content-Type": "application/json" }
    };
    if (body !== void 0) {
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: text };
    }
    if (!response.ok) {
      throw new ApiError(data?.error ?? response.statusText, data?.field ?? null, response.status);
    }
    return data;
  }
  function decodeImages(buffer) {
    const view = new DataView(buffer);
    const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
    if (magic !== "LTIM") {
      throw new Error("not an image message");
    }
    const n = view.getUint32(4, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, n)));
    let offset = 8 + n;
    const images = /* @__PURE__ */ new Map();
    for (const item of header.images) {
      const [height, width] = item.shape;
      const data = new Float32Array(buffer.slice(offset, offset + 4 * width * height));
      images.set(item.name, { name: item.name, width, height, data });
      offset += 4 * width * height;
    }
    return { ...header, images };
  }
  var Socket = class {
    constructor() {
      this.ws = null;
      this.queue = [];
      this.listeners = [];
      this.onImages = () => {
      };
      this.onState = () => {
      };
    }
    connect() {
      const proto = window.location.protocol === "https:" ? "wss" : "ws";
      const url = `${proto}://${window.location.host}/api/ws?token=${encodeURIComponent(TOKEN)}`;
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        this.onState(true);
        for (const m of this.queue) {
          ws.send(m);
        }
        this.queue = [];
      };
      ws.onclose = () => {
        this.onState(false);
        this.ws = null;
      };
      ws.onmessage = (ev) => {
        if (ev.data instanceof ArrayBuffer) {
          this.onImages(decodeImages(ev.data));
        } else {
          const message = JSON.parse(ev.data);
          for (const l of this.listeners) {
            l(message);
          }
        }
      };
      this.ws = ws;
    }
    on(listener) {
      this.listeners.push(listener);
    }
    send(message) {
      const text = JSON.stringify(message);
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(text);
      } else {
        this.queue.push(text);
      }
    }
  };

  // src/colormaps.ts
  var COLORMAP_TABLES = {
    "gray": "0000000101010202020303030404040505050606060707070808080909090a0a0a0b0b0b0c0c0c0d0d0d0e0e0e0f0f0f1010101111111212121313131414141515151616161717171818181919191a1a1a1b1b1b1c1c1c1d1d1d1e1e1e1f1f1f2020202121212222222323232424242525252626262727272828282929292a2a2a2b2b2b2c2c2c2d2d2d2e2e2e2f2f2f3030303131313232323333333434343535353636363737373838383939393a3a3a3b3b3b3c3c3c3d3d3d3e3e3e3f3f3f4040404141414242424343434444444545454646464747474848484949494a4a4a4b4b4b4c4c4c4d4d4d4e4e4e4f4f4f5050505151515252525353535454545555555656565757575858585959595a5a5a5b5b5b5c5c5c5d5d5d5e5e5e5f5f5f6060606161616262626363636464646565656666666767676868686969696a6a6a6b6b6b6c6c6c6d6d6d6e6e6e6f6f6f7070707171717272727373737474747575757676767777777878787979797a7a7a7b7b7b7c7c7c7d7d7d7e7e7e7f7f7f8080808181818282828383838484848585858686868787878888888989898a8a8a8b8b8b8c8c8c8d8d8d8e8e8e8f8f8f9090909191919292929393939494949595959696969797979898989999999a9a9a9b9b9b9c9c9c9d9d9d9e9e9e9f9f9fa0a0a0a1a1a1a2a2a2a3a3a3a4a4a4a5a5a5a6a6a6a7a7a7a8a8a8a9a9a9aaaaaaabababacacacadadadaeaeaeafafafb0b0b0b1b1b1b2b2b2b3b3b3b4b4b4b5b5b5b6b6b6b7b7b7b8b8b8b9b9b9babababbbbbbbcbcbcbdbdbdbebebebfbfbfc0c0c0c1c1c1c2c2c2c3c3c3c4c4c4c5c5c5c6c6c6c7c7c7c8c8c8c9c9c9cacacacbcbcbcccccccdcdcdcecececfcfcfd0d0d0d1d1d1d2d2d2d3d3d3d4d4d4d5d5d5d6d6d6d7d7d7d8d8d8d9d9d9dadadadbdbdbdcdcdcdddddddedededfdfdfe0e0e0e1e1e1e2e2e2e3e3e3e4e4e4e5e5e5e6e6e6e7e7e7e8e8e8e9e9e9eaeaeaebebebecececedededeeeeeeefefeff0f0f0f1f1f1f2f2f2f3f3f3f4f4f4f5f5f5f6f6f6f7f7f7f8f8f8f9f9f9fafafafbfbfbfcfcfcfdfdfdfefefeffffff",
    "viridis": "44015444025645045745055946075a46085c460a5d460b5e470d60470e6147106347116447136548146748166848176948186a481a6c481b6d481c6e481d6f481f70482071482173482374482475482576482677482878482979472a7a472c7a472d7b472e7c472f7d46307e46327e46337f463480453581453781453882443983443a83443b84433d84433e85423f854240864241864142874144874045884046883f47883f48893e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b3b528b3a538b3a548c39558c39568c38588c38598c375a8c375b8d365c8d365d8d355e8d355f8d34608d34618d33628d33638d32648e32658e31668e31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e2c728e2c738e2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d218f8d21908d21918c20928c20928c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a1e9c891e9d891f9e891f9f881fa0881fa1881fa1871fa28720a38620a48621a58521a68522a78522a88423a98324aa8325ab8225ac8226ad8127ad8128ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b32b67a34b67935b77937b87838b9773aba763bbb753dbc743fbc7340bd7242be7144bf7046c06f48c16e4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8645cc8635ec96260ca6063cb5f65cb5e67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517cd2507fd34e81d34d84d44b86d54989d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11cd2e21bd5e21ad8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61ef6e620f8e621fbe723fde725",
    "magma": "00000401000501010601010802010902020b02020d03030f03031204041405041606051806051a07061c08071e0907200a08220b09240c09260d0a290e0b2b100b2d110c2f120d31130d34140e36150e38160f3b180f3d19103f1a10421c10441d11471e114920114b21114e22115024125325125527125829115a2a115c2c115f2d11612f116331116533106734106936106b38106c390f6e3b0f703d0f713f0f72400f74420f75440f764510774710784910784a10794c117a4e117b4f127b51127c52137c54137d56147d57157e59157e5a167e5c167f5d177f5f187f601880621980641a80651a80671b80681c816a1c816b1d816d1d816e1e81701f81721f817320817521817621817822817922827b23827c23827e24828025828125818326818426818627818827818928818b29818c29818e2a81902a81912b81932b80942c80962c80982d80992d809b2e7f9c2e7f9e2f7fa02f7fa1307ea3307ea5317ea6317da8327daa337dab337cad347cae347bb0357bb2357bb3367ab5367ab73779b83779ba3878bc3978bd3977bf3a77c03a76c23b75c43c75c53c74c73d73c83e73ca3e72cc3f71cd4071cf4070d0416fd2426fd3436ed5446dd6456cd8456cd9466bdb476adc4869de4968df4a68e04c67e24d66e34e65e44f64e55064e75263e85362e95462ea5661eb5760ec5860ed5a5fee5b5eef5d5ef05f5ef1605df2625df2645cf3655cf4675cf4695cf56b5cf66c5cf66e5cf7705cf7725cf8745cf8765cf9785df9795df97b5dfa7d5efa7f5efa815ffb835ffb8560fb8761fc8961fc8a62fc8c63fc8e64fc9065fd9266fd9467fd9668fd9869fd9a6afd9b6bfe9d6cfe9f6dfea16efea36ffea571fea772fea973feaa74feac76feae77feb078feb27afeb47bfeb67cfeb77efeb97ffebb81febd82febf84fec185fec287fec488fec68afec88cfeca8dfecc8ffecd90fecf92fed194fed395fed597fed799fed89afdda9cfddc9efddea0fde0a1fde2a3fde3a5fde5a7fde7a9fde9aafdebacfcecaefceeb0fcf0b2fcf2b4fcf4b6fcf6b8fcf7b9fcf9bbfcfbbdfcfdbf",
    "inferno": "00000401000501010601010802010a02020c02020e03021004031204031405041706041907051b08051d09061f0a07220b07240c08260d08290e092b10092d110a30120a32140b34150b37160b39180c3c190c3e1b0c411c0c431e0c451f0c48210c4a230c4c240c4f260c51280b53290b552b0b572d0b592f0a5b310a5c320a5e340a5f3609613809623909633b09643d09653e0966400a67420a68440a68450a69470b6a490b6a4a0c6b4c0c6b4d0d6c4f0d6c510e6c520e6d540f6d550f6d57106e59106e5a116e5c126e5d126e5f136e61136e62146e64156e65156e67166e69166e6a176e6c186e6d186e6f196e71196e721a6e741a6e751b6e771c6d781c6d7a1d6d7c1d6d7d1e6d7f1e6c801f6c82206c84206b85216b87216b88226a8a226a8c23698d23698f24699025689225689326679526679727669827669a28659b29649d29649f2a63a02a63a22b62a32c61a52c60a62d60a82e5fa92e5eab2f5ead305dae305cb0315bb1325ab3325ab43359b63458b73557b93556ba3655bc3754bd3853bf3952c03a51c13a50c33b4fc43c4ec63d4dc73e4cc83f4bca404acb4149cc4248ce4347cf4446d04545d24644d34743d44842d54a41d74b3fd84c3ed94d3dda4e3cdb503bdd513ade5238df5337e05536e15635e25734e35933e45a31e55c30e65d2fe75e2ee8602de9612bea632aeb6429eb6628ec6726ed6925ee6a24ef6c23ef6e21f06f20f1711ff1731df2741cf3761bf37819f47918f57b17f57d15f67e14f68013f78212f78410f8850ff8870ef8890cf98b0bf98c0af98e09fa9008fa9207fa9407fb9606fb9706fb9906fb9b06fb9d07fc9f07fca108fca309fca50afca60cfca80dfcaa0ffcac11fcae12fcb014fcb216fcb418fbb61afbb81dfbba1ffbbc21fbbe23fac026fac228fac42afac62df9c72ff9c932f9cb35f8cd37f8cf3af7d13df7d340f6d543f6d746f5d949f5db4cf4dd4ff4df53f4e156f3e35af3e55df2e661f2e865f2ea69f1ec6df1ed71f1ef75f1f179f2f27df2f482f3f586f3f68af4f88ef5f992f6fa96f8fb9af9fc9dfafda1fcffa4",
    "cividis": "00224e00234f00245100255300255400265600275800285900285b00295d002a5f002a61002b62002c64002c66002d68002e6a002e6c002f6d00306f0030700031700031710132710533710833700c34700f357012357014367016377018376f1a386f1c396f1e3a6f203a6f213b6e233c6e243c6e263d6e273e6e293f6e2a3f6d2b406d2d416d2e416d2f426d31436d32436d33446d34456c35456c36466c38476c39486c3a486c3b496c3c4a6c3d4a6c3e4b6c3f4c6c404c6c414d6c424e6c434e6c444f6c45506c46516c47516c48526c49536c4a536c4b546c4c556c4d556c4e566c4f576c50576c51586d52596d535a6d545a6d555b6d555c6d565c6d575d6d585e6d595e6e5a5f6e5b606e5c616e5d616e5e626e5e636f5f636f60646f61656f62656f636670646770656870656870666970676a71686a71696b716a6c716b6d726c6d726c6e726d6f726e6f736f70737071737172747272747273747374757474757575757676767777767777777878777979777a7a787b7a787c7b787d7c787e7c787e7d787f7e78807f78817f788280798381798482798582798683798784788885788985788a86788b87788c88788d88788e89788f8a78908b78918b78928c78928d78938e78948e77958f779690779791779892779992779a93769b94769c95769d95769e96769f9775a09875a19975a29975a39a74a49b74a59c74a69c74a79d73a89e73a99f73aaa073aba072aca172ada272aea371afa471b0a571b1a570b3a670b4a76fb5a86fb6a96fb7a96eb8aa6eb9ab6dbaac6dbbad6dbcae6cbdae6cbeaf6bbfb06bc0b16ac1b26ac2b369c3b369c4b468c5b568c6b667c7b767c8b866c9b965cbb965ccba64cdbb63cebc63cfbd62d0be62d1bf61d2c060d3c05fd4c15fd5c25ed6c35dd7c45cd9c55cdac65bdbc75adcc859ddc858dec958dfca57e0cb56e1cc55e2cd54e4ce53e5cf52e6d051e7d150e8d24fe9d34eead34cebd44bedd54aeed649efd748f0d846f1d945f2da44f3db42f5dc41f6dd3ff7de3ef8df3cf9e03afbe138fce236fde334fee434fee535fee636fee838",
    "RdBu_r": "05306106326407346708366a09386d0a3b700c3d730d3f760e41790f437b10457e114781124984134c87144e8a15508d1752901854931956961a58991b5a9c1c5c9f1d5fa21e61a51f63a82065ab2267ac2369ad246aae266caf276eb02870b12a71b22b73b32c75b42e77b52f79b5307ab6327cb7337eb83480b93681ba3783bb3885bc3a87bd3b88be3c8abe3e8cbf3f8ec0408fc14291c24393c34695c44997c54c99c64f9bc7529dc8569fc959a1ca5ca3cb5fa5cd62a7ce65a9cf68abd06bacd16eaed271b0d375b2d478b4d57bb6d67eb8d781bad884bcd987beda8ac0db8dc2dc90c4dd93c6de96c7df98c8e09bc9e09dcbe1a0cce2a2cde3a5cee3a7d0e4a9d1e5acd2e5aed3e6b1d5e7b3d6e8b6d7e8b8d8e9bbdaeabddbeac0dcebc2ddecc5dfecc7e0edcae1eecce2efcfe4efd1e5f0d2e6f0d4e6f1d5e7f1d7e8f1d8e9f1dae9f2dbeaf2ddebf2deebf2e0ecf3e1edf3e3edf3e4eef4e6eff4e7f0f4e9f0f4eaf1f5ecf2f5edf2f5eff3f5f0f4f6f2f5f6f3f5f6f5f6f7f6f7f7f7f6f6f7f5f4f8f4f2f8f3f0f8f2eff8f1edf9f0ebf9efe9f9eee7f9ede5f9ebe3faeae1fae9dffae8defae7dcfbe6dafbe5d8fbe4d6fbe3d4fce2d2fce0d0fcdfcffcdecdfdddcbfddcc9fddbc7fdd9c4fcd7c2fcd5bffcd3bcfbd0b9fbceb7fbccb4facab1fac8aff9c6acf9c4a9f9c2a7f8bfa4f8bda1f8bb9ef7b99cf7b799f7b596f6b394f6b191f6af8ef5ac8bf5aa89f5a886f4a683f3a481f2a17ff19e7df09c7bef9979ee9677ec9374eb9172ea8e70e98b6ee8896ce6866ae58368e48066e37e64e27b62e17860df765ede735cdd7059dc6e57db6b55da6853d86551d7634fd6604dd55d4cd35a4ad25849d05548cf5246ce4f45cc4c44cb4942c94741c84440c6413ec53e3dc43b3cc2383ac13639bf3338be3036bd2d35bb2a34ba2832b82531b72230b61f2eb41c2db3192cb1182bae172aab162aa81529a51429a213289f12289c1127991027960f27930e26900d268d0c258a0b25870a248409248108237f08237c07227906227605217304217003206d02206a011f67001f",
    "twilight": "e2d9e2e1d9e2e0d9e2ded9e1ddd9e0dcd9dfdad8dfd8d8ded6d7ddd4d6dcd2d5dbd0d4d9cdd3d8cbd2d7c8d0d6c5cfd5c2ced4bfccd3bccbd1b9c9d0b6c8cfb3c6ceb0c5cdadc3cdaac2cca7c0cba4becaa1bdc99ebbc99cb9c899b8c896b6c793b4c692b3c68eb1c58cafc589adc588acc485a9c482a7c380a5c37fa5c37ca2c27aa0c2789ec2779dc2759ac17398c17196c17195c06e92c06d90c06c8ebf6b8dbf698abf6888be6786be6785be6682bd657fbd647dbc647cbc6379bb6277bb6275ba6172ba6171b9606eb8606cb86069b76067b65f65b55f62b45f60b45f5fb35f5bb25f59b15f57b05e54ae5e52ad5e4fac5e4dab5e4caa5e48a85e46a65e43a55d41a35d3ea15d3ca05d3a9e5c389d5c359a5b32985b30955a2e935a2b9059298e58278b58268a572385562182551f7f531e7c521c79511a754f19724f19704c176b4b166849156447146146145e44135a4212574112563f12513d114e3c114b3a114939114637114436114236114134113e33113c32123a3113393014373014373113373312373412383412383611393811393a113a3b113b3d113c3f123d41123d43123e4612404813414a13424d14434f14445215455415465615465916485c17495f174a61184b64194b67194c691a4d6c1b4e6f1c4e711d4f741e4f761f4f7920507b21507e22507f23508325508526508727508a29508c2a508e2c50902e50922f509431509633509835509a37509c39509e3b50a03d50a03e50a34150a54350a64550a84750a94950ab4b50ac4d51ae5051af5251b15452b25652b35953b55b53b65d54b75f55b86155b96456ba6657bb6958bc6b59bd6e5abe705bbf725dc0755ec1775fc27a61c27c63c37f64c48166c58468c5866ac6876bc68b6ec78e71c89073c89275c99578c9977bca9a7dca9c80cb9f83cca186cca389cda68ccda88fceab92cfad96cfae97d0b29cd1b4a0d1b6a3d2b8a7d3baaad4bdadd5bfb1d6c1b4d7c3b8d8c5bbd8c7bed9c9c2dacbc5dbccc8dccecbdccfcdddd1d1ded3d3dfd4d6dfd5d8e0d6dae0d7dbe1d8dde1d8dfe2d9e0e2d9e1e2d9e2"
  };

  // src/shapes.ts
  var SHAPE_FIELDS = {
    point: ["cx", "cy"],
    disk: ["cx", "cy", "r"],
    ring: ["cx", "cy", "ri", "ro"],
    rect: ["x", "y", "width", "height"],
    whole: []
  };
  var round2 = (v) => Math.round(v * 100) / 100;
  function createShape(kind, a, b) {
    const [ax, ay] = a;
    const [bx, by] = b;
    const dist = round2(Math.hypot(bx - ax, by - ay));
    switch (kind) {
      case "point":
        return { shape: "point", cx: Math.round(bx), cy: Math.round(by) };
      case "disk":
        return { shape: "disk", cx: round2(ax), cy: round2(ay), r: Math.max(dist, 1) };
      case "ring": {
        const ro = Math.max(dist, 2);
        return { shape: "ring", cx: round2(ax), cy: round2(ay), ri: round2(ro / 2), ro };
      }
      case "rect": {
        const x0 = Math.round(Math.min(ax, bx));
        const y0 = Math.round(Math.min(ay, by));
        const x1 = Math.round(Math.max(ax, bx));
        const y1 = Math.round(Math.max(ay, by));
        return { shape: "rect", x: x0, y: y0, width: Math.max(x1 - x0, 1), height: Math.max(y1 - y0, 1) };
      }
      default:
        return { shape: "whole" };
    }
  }
  function hitTest(s, x, y, tol) {
    switch (s.shape) {
      case "point":
        return Math.hypot(x - s.cx, y - s.cy) <= tol * 1.5 ? "move" : null;
      case "disk": {
        const d = Math.hypot(x - s.cx, y - s.cy);
        if (Math.abs(d - s.r) <= tol) return "r";
        return d < s.r ? "move" : null;
      }
      case "ring": {
        const d = Math.hypot(x - s.cx, y - s.cy);
        if (Math.abs(d - s.ro) <= tol) return "ro";
        if (Math.abs(d - s.ri) <= tol) return "ri";
        return d < s.ro ? "move" : null;
      }
      case "rect": {
        const x1 = s.x + s.width - 0.5;
        const y1 = s.y + s.height - 0.5;
        if (Math.hypot(x - x1, y - y1) <= tol * 1.5) return "corner";
        const inside = x >= s.x - 0.5 && x <= x1 && y >= s.y - 0.5 && y <= y1;
        return inside ? "move" : null;
      }
      default:
        return null;
    }
  }
  function dragShape(s, handle, x, y, dx, dy) {
    const out = { ...s };
    if (handle === "move") {
      if (s.shape === "rect") {
        out.x = s.x + Math.round(dx);
        out.y = s.y + Math.round(dy);
      } else if (s.shape === "point") {
        out.cx = Math.round(s.cx + dx);
        out.cy = Math.round(s.cy + dy);
      } else {
        out.cx = round2(s.cx + dx);
        out.cy = round2(s.cy + dy);
      }
      return out;
    }
    const d = round2(Math.hypot(x - (s.cx ?? 0), y - (s.cy ?? 0)));
    if (handle === "r") out.r = Math.max(d, 0.5);
    if (handle === "ro") out.ro = Math.max(d, s.ri);
    if (handle === "ri") out.ri = Math.min(d, s.ro);
    if (handle === "corner") {
      out.width = Math.max(Math.round(x + 0.5 - s.x), 1);
      out.height = Math.max(Math.round(y + 0.5 - s.y), 1);
    }
    return out;
  }
  function clampShape(s, width, height) {
    const out = { ...s };
    if (s.shape === "point") {
      out.cx = Math.min(Math.max(s.cx, 0), width - 1);
      out.cy = Math.min(Math.max(s.cy, 0), height - 1);
    }
    return out;
  }
  function drawShape(g, s, toCanvas, scale, color) {
    g.save();
    g.strokeStyle = color;
    g.fillStyle = color;
    g.lineWidth = 2;
    const circle = (cx, cy, r) => {
      const [px, py] = toCanvas(cx, cy);
      g.beginPath();
      g.arc(px, py, r * scale, 0, 2 * Math.PI);
      g.stroke();
    };
    const handle = (x, y) => {
      const [px, py] = toCanvas(x, y);
      g.fillRect(px - 3, py - 3, 6, 6);
    };
    switch (s.shape) {
      case "point": {
        const [px, py] = toCanvas(s.cx, s.cy);
        g.beginPath();
        g.moveTo(px - 8, py);
        g.lineTo(px + 8, py);
        g.moveTo(px, py - 8);
        g.lineTo(px, py + 8);
        g.stroke();
        g.strokeRect(px - scale / 2, py - scale / 2, scale, scale);
        break;
      }
      case "disk":
        circle(s.cx, s.cy, s.r);
        handle(s.cx + s.r, s.cy);
        handle(s.cx, s.cy);
        break;
      case "ring":
        circle(s.cx, s.cy, s.ro);
        g.setLineDash([4, 3]);
        circle(s.cx, s.cy, s.ri);
        g.setLineDash([]);
        handle(s.cx + s.ro, s.cy);
        handle(s.cx + s.ri, s.cy);
        handle(s.cx, s.cy);
        break;
      case "rect": {
        const [x0, y0] = toCanvas(s.x - 0.5, s.y - 0.5);
        g.strokeRect(x0, y0, s.width * scale, s.height * scale);
        handle(s.x + s.width - 0.5, s.y + s.height - 0.5);
        break;
      }
      default:
        break;
    }
    g.restore();
  }

  // src/imageview.ts
  var tables = /* @__PURE__ */ new Map();
  function table(name) {
    let t = tables.get(name);
    if (!t) {
      const hex = COLORMAP_TABLES[name] ?? COLORMAP_TABLES["gray"];
      t = new Uint8Array(hex.length / 2);
      for (let i = 0; i < t.length; i++) t[i] = parseInt(hex.substr(2 * i, 2), 16);
      tables.set(name, t);
    }
    return t;
  }
  function scaled(v, log) {
    return log ? Math.log1p(Math.max(v, 0)) : v;
  }
  function percentileLimits(data, scale) {
    const values = [];
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (Number.isFinite(v)) values.push(scaled(v, scale.log));
    }
    if (values.length === 0) return [0, 1];
    values.sort((a, b) => a - b);
    const at = (p) => {
      const pos = p / 100 * (values.length - 1);
      const i = Math.floor(pos);
      const f = pos - i;
      return i + 1 < values.length ? values[i] * (1 - f) + values[i + 1] * f : values[i];
    };
    return [at(scale.low), at(scale.high)];
  }
  function hsvToRgb(h, s, v) {
    const i = Math.floor(h * 6);
    const f = h * 6 - i;
    const p = v * (1 - s);
    const q = v * (1 - f * s);
    const t = v * (1 - (1 - f) * s);
    const m = [
      [v, t, p],
      [q, v, p],
      [p, v, t],
      [p, q, v],
      [t, p, v],
      [v, p, q]
    ][(i % 6 + 6) % 6];
    return [m[0] * 255, m[1] * 255, m[2] * 255];
  }
  var ImageView = class {
    constructor(canvas) {
      this.buffer = document.createElement("canvas");
      this.image = null;
      this.field = null;
      // (y, x) components, drawn as a colour wheel
      this.colorScale = { cmap: "gray", log: false, low: 0, high: 100 };
      this.limits = [0, 1];
      this.shape = null;
      this.shapeColor = "#ffcc00";
      this.marker = null;
      this.tool = null;
      this.onShapeChange = () => {
      };
      this.onPick = () => {
      };
      this.onHover = () => {
      };
      this.drag = null;
      this.lastEmit = 0;
      this.toCanvas = (x, y) => {
        const s = this.scale;
        return [(x + 0.5) * s, (y + 0.5) * s];
      };
      this.canvas = canvas;
      this.g = canvas.getContext("2d");
      canvas.addEventListener("mousedown", (e) => this.down(e));
      window.addEventListener("mousemove", (e) => this.move(e));
      window.addEventListener("mouseup", (e) => this.up(e));
      canvas.addEventListener("mouseleave", () => this.onHover(""));
    }
    get size() {
      const img = this.image ?? this.field?.[0];
      return img ? [img.width, img.height] : [1, 1];
    }
    get scale() {
      const [w, h] = this.size;
      return Math.min(this.canvas.width / w, this.canvas.height / h);
    }
    toImage(e) {
      const rect = this.canvas.getBoundingClientRect();
      const cx = (e.clientX - rect.left) * this.canvas.width / rect.width;
      const cy = (e.clientY - rect.top) * this.canvas.height / rect.height;
      const s = this.scale;
      return [cx / s - 0.5, cy / s - 0.5];
    }
    setImage(image) {
      this.image = image;
      this.field = null;
      this.render();
    }
    setField(fy, fx) {
      this.field = [fy, fx];
      this.image = null;
      this.render();
    }
    render() {
      const g = this.g;
      g.clearRect(0, 0, this.canvas.width, this.canvas.height);
      const [w, h] = this.size;
      if (this.image || this.field) {
        this.buffer.width = w;
        this.buffer.height = h;
        const bg = this.buffer.getContext("2d");
        const pixels = bg.createImageData(w, h);
        if (this.image) this.paintScalar(pixels.data, this.image.data);
        else this.paintField(pixels.data, this.field[0].data, this.field[1].data);
        bg.putImageData(pixels, 0, 0);
        g.imageSmoothingEnabled = false;
        g.drawImage(this.buffer, 0, 0, w * this.scale, h * this.scale);
      }
      if (this.shape) drawShape(g, this.shape, this.toCanvas, this.scale, this.shapeColor);
      if (this.marker) {
        const s = this.scale;
        const [px, py] = this.toCanvas(this.marker[0], this.marker[1]);
        g.save();
        g.strokeStyle = "#ff3b30";
        g.lineWidth = 2;
        g.strokeRect(px - s / 2 - 1, py - s / 2 - 1, s + 2, s + 2);
        g.restore();
      }
    }
    paintScalar(out, data) {
      const [lo, hi] = percentileLimits(data, this.colorScale);
      this.limits = [lo, hi];
      const lut = table(this.colorScale.cmap);
      const span = hi > lo ? hi - lo : 1;
      for (let i = 0; i < data.length; i++) {
        const v = data[i];
        if (!Number.isFinite(v)) {
          out[4 * i + 3] = 0;
          continue;
        }
        const t = Math.min(Math.max((scaled(v, this.colorScale.log) - lo) / span, 0), 1);
        const k = Math.round(t * 255) * 3;
        out[4 * i] = lut[k];
        out[4 * i + 1] = lut[k + 1];
        out[4 * i + 2] = lut[k + 2];
        out[4 * i + 3] = 255;
      }
    }
    paintField(out, fy, fx) {
      let top = 0;
      for (let i = 0; i < fy.length; i++) {
        const m = Math.hypot(fy[i], fx[i]);
        if (Number.isFinite(m) && m > top) top = m;
      }
      this.limits = [0, top];
      for (let i = 0; i < fy.length; i++) {
        const m = Math.hypot(fy[i], fx[i]);
        if (!Number.isFinite(m)) {
          out[4 * i + 3] = 0;
          continue;
        }
        const hue = (Math.atan2(fy[i], fx[i]) / (2 * Math.PI) % 1 + 1) % 1;
        const [r, g, b] = hsvToRgb(hue, 1, top > 0 ? m / top : 0);
        out[4 * i] = r;
        out[4 * i + 1] = g;
        out[4 * i + 2] = b;
        out[4 * i + 3] = 255;
      }
    }
    // The value under the cursor, as text.
    describe(x, y) {
      const [w, h] = this.size;
      const ix = Math.round(x);
      const iy = Math.round(y);
      if (ix < 0 || iy < 0 || ix >= w || iy >= h || !this.image && !this.field) return "";
      const i = iy * w + ix;
      const fmt = (v) => Number.isFinite(v) ? Number(v.toPrecision(6)).toString() : "\u2014";
      if (this.image) return `x=${ix} y=${iy} value=${fmt(this.image.data[i])}`;
      const [fy, fx] = this.field;
      return `x=${ix} y=${iy} field=(y ${fmt(fy.data[i])}, x ${fmt(fx.data[i])})`;
    }
    down(e) {
      if (e.button !== 0) return;
      const [x, y] = this.toImage(e);
      const tol = 6 / this.scale + 0.5;
      const editable = this.shape && (this.tool === this.shape.shape || this.tool === null);
      const handle = editable ? hitTest(this.shape, x, y, tol) : null;
      if (handle) {
        this.drag = { handle, start: [x, y], shape: { ...this.shape } };
      } else if (this.tool === "pick") {
        this.pick(x, y);
        this.drag = { handle: "move", start: [x, y], shape: null };
      } else if (this.tool && this.tool !== "whole") {
        this.drag = { handle: "create", start: [x, y], shape: null };
        this.shape = createShape(this.tool, [x, y], [x, y]);
        this.render();
      }
      e.preventDefault();
    }
    pick(x, y) {
      const [w, h] = this.size;
      const ix = Math.min(Math.max(Math.round(x), 0), w - 1);
      const iy = Math.min(Math.max(Math.round(y), 0), h - 1);
      if (this.marker && this.marker[0] === ix && this.marker[1] === iy) return;
      this.marker = [ix, iy];
      this.render();
      this.onPick(ix, iy);
    }
    move(e) {
      const [x, y] = this.toImage(e);
      if (e.target === this.canvas) this.onHover(this.describe(x, y));
      if (!this.drag) return;
      if (!this.drag.shape && this.drag.handle !== "create") {
        this.pick(x, y);
        return;
      }
      this.updateDrag(x, y, false);
    }
    up(e) {
      if (!this.drag) return;
      const [x, y] = this.toImage(e);
      if (this.drag.shape || this.drag.handle === "create") this.updateDrag(x, y, true);
      this.drag = null;
    }
    updateDrag(x, y, final) {
      const d = this.drag;
      const [w, h] = this.size;
      if (d.handle === "create") {
        this.shape = createShape(this.tool, d.start, [x, y]);
      } else {
        this.shape = dragShape(d.shape, d.handle, x, y, x - d.start[0], y - d.start[1]);
      }
      this.shape = clampShape(this.shape, w, h);
      this.render();
      const now = performance.now();
      if (final || now - this.lastEmit > 150) {
        this.lastEmit = now;
        this.onShapeChange(this.shape, final);
      }
    }
  };

  // src/pane.ts
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  function select(name, options, value) {
    const s = el("select", { name });
    for (const [v, label] of options) s.append(el("option", { value: v, text: label }));
    s.value = value;
    return s;
  }
  var Pane = class {
    constructor(name, title, colormaps) {
      this.images = /* @__PURE__ */ new Map();
      this.run = null;
      this.channel = "intensity";
      const canvas = el("canvas", { width: "360", height: "360", class: "view" });
      this.view = new ImageView(canvas);
      this.toolbar = el("div", { class: "toolbar" });
      this.controls = el("div", { class: "controls" });
      this.progress = el("progress", { max: "1", value: "0" });
      this.status = el("span", { class: "status" });
      this.readout = el("div", { class: "readout", text: "\xA0" });
      this.downloads = el("div", { class: "downloads" });
      this.channelSelect = select("channel", [["intensity", "intensity"]], "intensity");
      this.channelSelect.hidden = true;
      this.cmap = select("cmap", colormaps.map((c) => [c, c]), "gray");
      this.scaleSelect = select("scale", [["linear", "linear"], ["log", "log"]], "linear");
      this.low = el("input", { name: "low", type: "number", min: "0", max: "100", step: "0.5", value: "0" });
      this.high = el("input", { name: "high", type: "number", min: "0", max: "100", step: "0.5", value: "100" });
      const colour = el(
        "div",
        { class: "colour" },
        this.channelSelect,
        this.cmap,
        this.scaleSelect,
        el("label", {}, "low %", this.low),
        el("label", {}, "high %", this.high)
      );
      for (const input of [this.cmap, this.scaleSelect, this.low, this.high]) {
        input.addEventListener("change", () => this.applyScale());
      }
      this.channelSelect.addEventListener("change", () => {
        this.channel = this.channelSelect.value;
        this.show();
      });
      this.view.onHover = (text) => this.readout.textContent = text || "\xA0";
      this.root = el(
        "div",
        { class: "pane", "data-pane": name, "data-state": "idle" },
        el("h3", { text: title }),
        this.toolbar,
        this.controls,
        canvas,
        el("div", { class: "runline" }, this.progress, this.status),
        this.readout,
        colour,
        this.downloads
      );
    }
    applyScale() {
      const low = Math.min(Math.max(Number(this.low.value) || 0, 0), 100);
      const high = Math.min(Math.max(Number(this.high.value) || 100, 0), 100);
      this.view.colorScale = {
        cmap: this.cmap.value,
        log: this.scaleSelect.value === "log",
        low: Math.min(low, high),
        high: Math.max(low, high)
      };
      this.view.render();
      this.updateDownloads();
    }
    setChannels(channels, value) {
      this.channelSelect.replaceChildren(...channels.map(([v, l]) => el("option", { value: v, text: l })));
      this.channelSelect.hidden = channels.length < 2;
      this.channelSelect.value = value;
      this.channel = value;
    }
    setColormap(name) {
      this.cmap.value = name;
      this.applyScale();
    }
    // A run's state changed.
    setRun(run) {
      this.run = run;
      const state = run ? run.state : "idle";
      this.root.dataset.state = state;
      this.root.dataset.run = run ? run.id : "";
      if (run) {
        const [done, total] = run.progress;
        this.progress.max = Math.max(total, 1);
        this.progress.value = done;
        this.status.textContent = run.state === "error" ? `error: ${run.error}` : `${run.title}: ${run.state}`;
      } else {
        this.status.textContent = "";
      }
      this.updateDownloads();
    }
    setError(message) {
      this.root.dataset.state = "error";
      this.status.textContent = `error: ${message}`;
    }
    // New images of the run shown here.
    setImages(message) {
      this.images = message.images;
      const [done, total] = message.progress;
      this.progress.max = Math.max(total, 1);
      this.progress.value = done;
      this.show();
    }
    show() {
      if (this.channel === "field") {
        const fy = this.images.get("field_y");
        const fx = this.images.get("field_x");
        if (fy && fx) this.view.setField(fy, fx);
        return;
      }
      this.view.setImage(this.images.get(this.channel) ?? this.images.values().next().value ?? null);
    }
    updateDownloads() {
      const run = this.run;
      this.downloads.replaceChildren();
      if (!run || run.state !== "done") return;
      const base = `/api/runs/${run.id}`;
      const name = run.outputs.includes(this.channel) ? this.channel : run.outputs[0];
      const s = this.view.colorScale;
      const png = `cmap=${encodeURIComponent(s.cmap)}&log=${s.log ? 1 : 0}&low=${s.low}&high=${s.high}`;
      const t = `token=${encodeURIComponent(TOKEN)}`;
      const links = [
        [".npy", `${base}/download/${name}.npy?${t}`, "npy"],
        [".tif 32", `${base}/download/${name}.tif?bits=32&${t}`, "tif32"],
        [".tif 16", `${base}/download/${name}.tif?bits=16&${t}`, "tif16"],
        [".png", `${base}/download/${name}.png?${png}&${t}`, "png"],
        ["script", `${base}/script.py?${t}`, "script"],
        ["notebook", `${base}/notebook.ipynb?${t}`, "notebook"]
      ];
      this.downloads.append("download: ");
      for (const [label, href, kind] of links) {
        this.downloads.append(el("a", { href, download: "", "data-download": kind, text: label }), " ");
      }
    }
  };

  // src/browser.ts
  function join(folder, name) {
    return folder ? `${folder}/${name}` : name;
  }
  function sizeText(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }
  function toText(value) {
    if (Array.isArray(value)) return value.join(", ");
    return value === void 0 || value === null ? "" : String(value);
  }
  var FileBrowser = class {
    constructor(formats, onOpened) {
      this.folder = "";
      this.formats = formats;
      this.onOpened = onOpened;
      this.where = el("div", { class: "where" });
      this.list = el("ul", { class: "files" });
      this.form = el("form", { class: "open-form", id: "open-form" });
      this.form.hidden = true;
      this.root = el("div", { class: "browser" }, el("h2", { text: "Files" }), this.where, this.list, this.form);
    }
    async show(folder) {
      let listing;
      try {
        listing = await api(`/api/files?path=${encodeURIComponent(folder)}`);
      } catch (e) {
        this.where.textContent = `cannot list ${folder}: ${e.message}`;
        return;
      }
      this.folder = listing.path;
      this.where.textContent = `/${listing.path}`;
      const items = [];
      if (listing.parent !== null) {
        items.push(this.item("..", "dir", "", () => this.show(listing.parent)));
      }
      for (const entry of listing.entries) {
        const path = join(listing.path, entry.name);
        const action = entry.kind === "dir" ? () => this.show(path) : () => this.choose(path);
        items.push(this.item(entry.name, entry.kind, entry.kind === "file" ? sizeText(entry.size) : "", action));
      }
      this.list.replaceChildren(...items);
    }
    item(name, kind, size, action) {
      const li = el("li", { class: kind, "data-name": name }, el("span", { class: "name", text: name }));
      if (size) li.append(el("span", { class: "size", text: size }));
      li.addEventListener("click", action);
      return li;
    }
    // A file was chosen: detect its format and show the form.
    async choose(path) {
      let detected = {};
      try {
        detected = await api("/api/detect", { path });
      } catch (e) {
        detected = {};
      }
      this.showForm(path, detected.filetype ?? "", detected.params ?? {});
    }
    showForm(path, filetype, values) {
      const form = this.form;
      form.hidden = false;
      form.dataset.path = path;
      const typeSelect = el("select", { name: "filetype" });
      typeSelect.append(el("option", { value: "auto", text: "auto" }));
      for (const name of Object.keys(this.formats)) typeSelect.append(el("option", { value: name, text: name }));
      typeSelect.value = filetype && this.formats[filetype] ? filetype : "auto";
      const fields = el("div", { class: "fields" });
      const renderFields = () => this.renderFields(fields, typeSelect.value, values);
      typeSelect.addEventListener("change", renderFields);
      renderFields();
      const submit = el("button", { type: "submit", text: "Open" });
      form.replaceChildren(
        el("h3", { text: `Open ${path}` }),
        el("label", {}, "format ", typeSelect),
        el("div", { class: "error", "data-for": "filetype" }),
        fields,
        el("div", { class: "error", "data-for": "general" }),
        submit
      );
      form.onsubmit = (ev) => {
        ev.preventDefault();
        void this.open(path, typeSelect.value, fields, submit);
      };
    }
    renderFields(container, filetype, values) {
      const format = this.formats[filetype];
      container.replaceChildren();
      if (!format) return;
      for (const [name, schema] of Object.entries(format.properties)) {
        if (name === "path") continue;
        let input;
        if (schema.enum) {
          input = el("select", { name });
          input.append(el("option", { value: "", text: "(default)" }));
          for (const v of schema.enum) input.append(el("option", { value: String(v), text: String(v) }));
        } else if (schema.type === "boolean") {
          input = el("input", { type: "checkbox", name });
        } else {
          input = el("input", { type: "text", name });
          if (schema.type === "array") input.placeholder = "e.g. 16, 16";
        }
        if (input instanceof HTMLInputElement && input.type === "checkbox") input.checked = Boolean(values[name]);
        else input.value = toText(values[name]);
        input.dataset.kind = schema.type === "array" ? "shape" : schema.type ?? "string";
        const required = format.required.includes(name) ? " *" : "";
        container.append(
          el("label", { class: "field" }, `${name}${required} `, input),
          el("div", { class: "error", "data-for": name })
        );
      }
    }
    // The form's values as JSON; a value that does not parse is sent as text so
    // that the server names the problem.
    values(fields) {
      const out = {};
      for (const input of fields.querySelectorAll("input, select")) {
        const kind = input.dataset.kind;
        const name = input.name;
        if (input instanceof HTMLInputElement && input.type === "checkbox") {
          if (input.checked) out[name] = true;
          continue;
        }
        const text = input.value.trim();
        if (!text) continue;
        if (kind === "shape") {
          const parts = text.split(/[\s,x×]+/).filter(Boolean).map(Number);
          out[name] = parts.every((n) => Number.isInteger(n)) ? parts : text;
        } else if (kind === "integer" || kind === "number") {
          const n = Number(text);
          out[name] = Number.isFinite(n) ? n : text;
        } else {
          out[name] = text;
        }
      }
      return out;
    }
    async open(path, filetype, fields, submit) {
      for (const e of this.form.querySelectorAll(".error")) e.textContent = "";
      submit.disabled = true;
      this.form.dataset.state = "opening";
      try {
        const info = await api("/api/datasets", { path, filetype, params: this.values(fields) });
        this.form.hidden = true;
        this.form.dataset.state = "opened";
        this.onOpened(info);
      } catch (e) {
        const err = e;
        const field = err.field && this.form.querySelector(`.error[data-for="${err.field}"]`) ? err.field : "general";
        this.form.querySelector(`.error[data-for="${field}"]`).textContent = err.message;
        this.form.dataset.state = "error";
      } finally {
        submit.disabled = false;
      }
    }
    get currentFolder() {
      return this.folder;
    }
  };

  // src/datasetview.ts
  var COM_CHANNELS = [
    ["field", "field (colour wheel)"],
    ["magnitude", "magnitude"],
    ["divergence", "divergence"],
    ["curl", "curl"],
    ["field_y", "field y"],
    ["field_x", "field x"]
  ];
  function button(label, attrs, onClick) {
    const b = el("button", { type: "button", ...attrs, text: label });
    b.addEventListener("click", onClick);
    return b;
  }
  var runNumber = (id) => Number(id.slice(1));
  var DatasetView = class {
    constructor(info, socket, colormaps, onClose) {
      this.roi = null;
      this.detectorTools = /* @__PURE__ */ new Map();
      this.navTools = /* @__PURE__ */ new Map();
      this.runs = /* @__PURE__ */ new Map();
      this.info = info;
      this.socket = socket;
      const [sy, sx] = info.sig_2d;
      const [ny, nx] = info.nav_2d;
      this.picked = [Math.floor(nx / 2), Math.floor(ny / 2)];
      this.detector = { shape: "disk", cx: sx / 2, cy: sy / 2, r: Math.round(Math.min(sx, sy) / 8) };
      this.panes = {
        nav: new Pane("nav", "Navigation: sum over each frame", colormaps),
        frame: new Pane("frame", "Frame", colormaps),
        result: new Pane("result", "Result", colormaps)
      };
      const nav = this.panes.nav;
      nav.view.shapeColor = "#34c759";
      for (const [tool, label] of [["pick", "pick frame"], ["rect", "ROI rectangle"], ["disk", "ROI disk"]]) {
        const b = button(label, { "data-tool": tool }, () => this.setNavTool(tool));
        this.navTools.set(tool, b);
        nav.toolbar.append(b);
      }
      nav.toolbar.append(button("clear ROI", { "data-action": "clear-roi" }, () => this.setRoi(null)));
      nav.view.onPick = (x, y) => this.pick(x, y);
      nav.view.onShapeChange = (shape2, final) => {
        if (final) this.setRoi(shape2);
      };
      nav.view.marker = this.picked;
      this.setNavTool("pick");
      const frame = this.panes.frame;
      this.frameMode = select(
        "frame-mode",
        [
          ["pick", "picked frame"],
          ["sum", "sum of all frames"],
          ["mean", "average of all frames"],
          ["roisum", "sum over the ROI"],
          ["roimean", "average over the ROI"]
        ],
        "mean"
      );
      this.frameMode.addEventListener("change", () => this.runFrame());
      frame.toolbar.append(this.frameMode, el("span", { class: "sep", text: "detector:" }));
      for (const tool of ["point", "disk", "ring", "rect", "whole"]) {
        const b = button(tool, { "data-tool": tool }, () => this.setDetectorTool(tool));
        this.detectorTools.set(tool, b);
        frame.toolbar.append(b);
      }
      this.detectorInputs = el("div", { class: "detector-params" });
      frame.controls.append(this.detectorInputs);
      frame.view.onShapeChange = (shape2, final) => this.setDetector(shape2, final);
      frame.view.shape = this.detector;
      this.setDetectorTool("disk");
      const result = this.panes.result;
      this.analysis = select("analysis", [["virtual", "virtual image"], ["com", "centre of mass"]], "virtual");
      this.analysis.addEventListener("change", () => this.analysisChanged());
      this.useRoi = el("input", { type: "checkbox", name: "use-roi" });
      this.useRoi.addEventListener("change", () => this.runResult());
      this.flipY = el("input", { type: "checkbox", name: "flip_y" });
      this.rotation = el("input", { type: "number", name: "scan_rotation", value: "0", step: "1" });
      this.regression = select(
        "regression",
        [["-1", "no regression"], ["0", "subtract mean"], ["1", "subtract linear"]],
        "-1"
      );
      for (const input of [this.flipY, this.rotation, this.regression]) {
        input.addEventListener("change", () => this.runResult());
      }
      this.comControls = el(
        "div",
        { class: "com-params" },
        el("label", {}, this.flipY, " flip y"),
        el("label", {}, "rotation (\xB0) ", this.rotation),
        this.regression
      );
      this.comControls.hidden = true;
      result.toolbar.append(this.analysis, el("label", {}, this.useRoi, " only the ROI"));
      result.controls.append(this.comControls);
      result.view.tool = "pick";
      result.view.marker = this.picked;
      result.view.onPick = (x, y) => this.pick(x, y);
      const shape = info.shape.join(" \xD7 ");
      this.root = el(
        "section",
        { class: "dataset", "data-dataset": info.id },
        el(
          "header",
          {},
          el("h2", { text: info.name }),
          el("span", { class: "meta", text: `${info.filetype}, ${shape}, ${info.dtype}` }),
          button("close", { "data-action": "close" }, onClose)
        ),
        el("div", { class: "panes" }, nav.root, frame.root, result.root)
      );
      this.showDetectorInputs();
    }
    // Start (or, if another tab already runs them, watch) the three panes' runs.
    async start() {
      let existing = [];
      try {
        existing = (await api("/api/status")).runs;
      } catch {
        existing = [];
      }
      for (const channel of ["nav", "frame", "result"]) {
        const runs = existing.filter((r) => r.dataset === this.info.id && r.channel === channel);
        const latest = runs.filter((r) => r.state === "running" || r.state === "done").pop();
        if (latest) {
          this.socket.send({ type: "watch", run: latest.id, channel });
          this.runs.set(channel, latest.id);
        } else if (channel === "nav") this.socket.send(this.request("nav", { kind: "navsum" }));
        else if (channel === "frame") this.runFrame();
        else this.runResult();
      }
    }
    request(channel, analysis) {
      return { type: "run", dataset: this.info.id, channel, analysis };
    }
    send(channel, analysis) {
      this.panes[channel].root.dataset.state = "queued";
      this.socket.send(this.request(channel, analysis));
    }
    handleRun(run) {
      const channel = run.channel;
      const pane = this.panes[channel];
      if (!pane) return;
      const current = this.runs.get(channel);
      if (current !== void 0 && runNumber(run.id) < runNumber(current)) return;
      this.runs.set(channel, run.id);
      pane.setRun(run);
    }
    handleImages(message) {
      const channel = message.channel;
      if (this.runs.get(channel) !== message.run) return;
      this.panes[channel]?.setImages(message);
    }
    handleError(channel, message) {
      this.panes[channel]?.setError(message);
    }
    close() {
      for (const channel of ["nav", "frame", "result"]) {
        this.socket.send({ type: "unwatch", dataset: this.info.id, channel });
      }
      this.root.remove();
    }
    pick(x, y) {
      this.picked = [x, y];
      this.panes.nav.view.marker = this.picked;
      this.panes.result.view.marker = this.picked;
      this.panes.nav.view.render();
      this.panes.result.view.render();
      this.frameMode.value = "pick";
      this.runFrame();
    }
    setNavTool(tool) {
      this.panes.nav.view.tool = tool === "pick" ? "pick" : tool;
      for (const [t, b] of this.navTools) b.classList.toggle("active", t === tool);
    }
    setRoi(shape) {
      this.roi = shape;
      this.panes.nav.view.shape = shape;
      this.panes.nav.view.render();
      if (this.frameMode.value.startsWith("roi")) this.runFrame();
      if (this.useRoi.checked) this.runResult();
    }
    runFrame() {
      const mode = this.frameMode.value;
      if (mode === "pick") {
        this.panes.frame.root.querySelector("h3").textContent = `Frame at x=${this.picked[0]}, y=${this.picked[1]}`;
        this.send("frame", { kind: "pick", x: this.picked[0], y: this.picked[1] });
        return;
      }
      this.panes.frame.root.querySelector("h3").textContent = "Frame";
      const mean = mode.endsWith("mean");
      if (mode.startsWith("roi")) {
        if (!this.roi) {
          this.panes.frame.setError("draw an ROI on the navigation image first");
          return;
        }
        this.send("frame", { kind: "framesum", mean, roi: this.roi });
      } else {
        this.send("frame", { kind: "framesum", mean });
      }
    }
    setDetectorTool(tool) {
      this.panes.frame.view.tool = tool;
      for (const [t, b] of this.detectorTools) b.classList.toggle("active", t === tool);
      if (tool === "whole") this.setDetector({ shape: "whole" }, true);
    }
    setDetector(shape, final) {
      this.detector = shape;
      this.panes.frame.view.shape = shape;
      this.panes.frame.view.render();
      this.showDetectorInputs();
      if (final || this.analysis.value === "virtual") this.runResult();
    }
    showDetectorInputs() {
      const shape = this.detector;
      const inputs = [el("span", { text: `${shape.shape}:` })];
      for (const key of SHAPE_FIELDS[shape.shape]) {
        const input = el("input", { type: "number", name: `det-${key}`, step: "any", value: String(shape[key]) });
        input.addEventListener("change", () => {
          const value = Number(input.value);
          if (!Number.isFinite(value)) return;
          this.setDetector({ ...this.detector, [key]: value }, true);
        });
        inputs.push(el("label", {}, `${key} `, input));
      }
      this.detectorInputs.replaceChildren(...inputs);
    }
    analysisChanged() {
      const com = this.analysis.value === "com";
      this.comControls.hidden = !com;
      const pane = this.panes.result;
      if (com) pane.setChannels(COM_CHANNELS, "field");
      else pane.setChannels([["intensity", "intensity"]], "intensity");
      if (com && !["disk", "ring", "whole"].includes(this.detector.shape)) {
        const [sy, sx] = this.info.sig_2d;
        this.setDetector({ shape: "disk", cx: sx / 2, cy: sy / 2, r: Math.round(Math.min(sx, sy) / 4) }, false);
        this.setDetectorTool("disk");
      }
      this.runResult();
    }
    runResult() {
      const roi = this.useRoi.checked ? this.roi : null;
      if (this.useRoi.checked && !roi) {
        this.panes.result.setError("draw an ROI on the navigation image first");
        return;
      }
      const title = this.panes.result.root.querySelector("h3");
      if (this.analysis.value === "virtual") {
        title.textContent = `Result: virtual image (${this.detector.shape})`;
        this.send("result", { kind: "virtual", detector: this.detector, roi });
        return;
      }
      title.textContent = "Result: centre of mass";
      const d = this.detector;
      const [sy, sx] = this.info.sig_2d;
      let params2;
      if (d.shape === "disk") params2 = { cx: d.cx, cy: d.cy, r: d.r, ri: 0 };
      else if (d.shape === "ring") params2 = { cx: d.cx, cy: d.cy, r: d.ro, ri: d.ri };
      else if (d.shape === "whole") params2 = { cx: sx / 2, cy: sy / 2, r: null, ri: 0 };
      else {
        this.panes.result.setError("centre of mass needs a disk, ring or whole-frame detector");
        return;
      }
      params2.flip_y = this.flipY.checked;
      params2.scan_rotation = Number(this.rotation.value) || 0;
      params2.regression = Number(this.regression.value);
      this.send("result", { kind: "com", params: params2, roi });
    }
  };

  // src/main.ts
  async function main() {
    const config = await api("/api/config");
    const socket = new Socket();
    const views = /* @__PURE__ */ new Map();
    const tabs = el("nav", { class: "tabs" });
    const main2 = document.getElementById("datasets");
    const state = document.getElementById("connection");
    document.getElementById("server").textContent = `${config.executor} \xB7 root: ${config.root} \xB7 v${config.version}`;
    const activate = (id) => {
      for (const [vid, view] of views) view.root.hidden = vid !== id;
      for (const tab of tabs.querySelectorAll("button")) {
        tab.classList.toggle("active", tab.dataset.dataset === id);
      }
    };
    const add = (info) => {
      if (views.has(info.id)) {
        activate(info.id);
        return;
      }
      const view = new DatasetView(info, socket, config.colormaps, () => {
        void api(`/api/datasets/${info.id}`, void 0, "DELETE").catch(() => void 0);
      });
      views.set(info.id, view);
      main2.append(view.root);
      const tab = el("button", { type: "button", "data-dataset": info.id, text: info.name });
      tab.addEventListener("click", () => activate(info.id));
      tabs.append(tab);
      activate(info.id);
      void view.start();
    };
    const sync = (datasets) => {
      const ids = new Set(datasets.map((d) => d.id));
      for (const [id, view] of views) {
        if (!ids.has(id)) {
          view.close();
          views.delete(id);
          tabs.querySelector(`button[data-dataset="${id}"]`)?.remove();
        }
      }
      for (const d of datasets) if (!views.has(d.id)) add(d);
    };
    socket.on((message) => {
      if (message.event === "datasets") sync(message.datasets);
      else if (message.event === "run") {
        const run = message.run;
        views.get(run.dataset)?.handleRun(run);
      } else if (message.event === "error") {
        if (message.dataset) views.get(message.dataset)?.handleError(message.channel, message.message);
        else console.warn(message.message);
      }
    });
    socket.onImages = (m) => views.get(m.dataset)?.handleImages(m);
    socket.onState = (connected) => {
      state.textContent = connected ? "connected" : "disconnected: reload the page";
      state.className = connected ? "ok" : "bad";
    };
    socket.connect();
    const browser = new FileBrowser(config.formats, add);
    document.getElementById("sidebar").append(browser.root, el("h2", { text: "Datasets" }), tabs);
    await browser.show("");
  }
  main().catch((e) => {
    document.body.prepend(el("div", { class: "fatal", text: `could not start: ${e.message}` }));
  });
})();
